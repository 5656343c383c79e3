"""Figure provenance: the ``<figure>.prov.json`` sidecar, the embedded ID, atomic figure writing.

A figure's sidecar records how it was made (rule, wildcards, params, the command that
regenerates it, the resolved-config hash, code and software versions, host, device, time) and
every input with its sha256 and, where one exists, the manifest beside it (``X.manifest.json``
or the directory's ``manifest.json``) with that manifest's sha256. Manifests list their own
inputs, so ``autospec audit`` can follow the chain back to raw cohort files.

The provenance ID is ``prov-`` + the first 32 hex digits of the sha256 of the sidecar's
canonical JSON (sorted keys, no whitespace) without the fields ``provenance_id`` and ``outputs``
(the figure files' own hashes cannot be part of the ID the files embed). It is written into the
PNG as text chunks (``autospec:provenance``, ``autospec:sidecar``, ``Software``) and into the PDF
Info dictionary (``Keywords``, ``Subject``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import atomic_outputs, sha256_file, write_text_atomic
from ..manifest import find_manifest
from ..versions import code_version, host_info, package_versions

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SCHEMA = "autospec-figure-provenance/1"
PNG_KEY = "autospec:provenance"
PNG_SIDECAR_KEY = "autospec:sidecar"
_UNHASHED = ("provenance_id", "outputs")


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def provenance_id(sidecar: Mapping[str, Any]) -> str:
    """The ID derived from the sidecar content (see module doc)."""
    content = {k: v for k, v in sidecar.items() if k not in _UNHASHED}
    return "prov-" + hashlib.sha256(canonical_json(content).encode()).hexdigest()[:32]


def sidecar_path_for(figure: os.PathLike[str] | str) -> Path:
    """``fig.png`` -> ``fig.prov.json``."""
    return Path(figure).with_suffix(".prov.json")


def input_record(path: os.PathLike[str] | str) -> dict[str, Any]:
    """Path, sha256, size and linked manifest of one figure input."""
    p = Path(path)
    rec: dict[str, Any] = {
        "path": str(p),
        "abspath": str(p.resolve()),
        "sha256": sha256_file(p),
        "bytes": p.stat().st_size,
        "manifest": None,
    }
    m = find_manifest(p)
    if m is not None:
        rec["manifest"] = {"path": str(m), "abspath": str(m.resolve()), "sha256": sha256_file(m)}
    return rec


def config_hash(config: os.PathLike[str] | str | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """sha256 of a config file's bytes, or of a mapping's canonical JSON."""
    if config is None:
        return None
    if isinstance(config, Mapping):
        return {"source": "inline", "sha256": hashlib.sha256(canonical_json(config).encode()).hexdigest()}
    p = Path(config)
    return {"source": str(p), "sha256": sha256_file(p)}


def current_command(argv: Sequence[str] | None = None) -> str:
    """A command line, shell-quoted; ``python -m autospec`` spelled so it re-runs.

    ``argv`` is the command to record (the CLI hands its own, ``args.invocation``, to the steps);
    without it, the running process's ``sys.argv``.
    """
    argv = list(sys.argv if argv is None else argv)
    if argv and Path(argv[0]).name == "__main__.py" and Path(argv[0]).parent.name == "autospec":
        argv = [sys.executable, "-m", "autospec", *argv[1:]]
    return shlex.join(argv)


def software_versions() -> dict[str, str | None]:
    out = package_versions()
    for name in ("matplotlib", "pillow"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def build_sidecar(
    kind: str,
    inputs: Sequence[os.PathLike[str] | str],
    *,
    rule: str | None = None,
    wildcards: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    command: str | None = None,
    config: os.PathLike[str] | str | Mapping[str, Any] | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Sidecar content (without outputs) with its provenance ID."""
    seen: set[str] = set()
    records = []
    for p in inputs:
        key = str(Path(p).resolve())
        if key not in seen:
            seen.add(key)
            records.append(input_record(p))
    side: dict[str, Any] = {
        "schema": SCHEMA,
        "figure": {"kind": kind},
        "rule": rule,
        "wildcards": dict(wildcards or {}),
        "params": dict(params or {}),
        "command": command if command is not None else current_command(),
        "cwd": os.getcwd(),
        "config": config_hash(config),
        "code": code_version(),
        "software": software_versions(),
        "host": host_info(),
        "device": device or "cpu (matplotlib Agg)",
        "created": _dt.datetime.now(_dt.UTC).isoformat(),
        "inputs": records,
    }
    side["provenance_id"] = provenance_id(side)
    return side


def save_figure(
    fig: Figure,
    out_png: os.PathLike[str] | str | None,
    out_pdf: os.PathLike[str] | str | None,
    sidecar: dict[str, Any],
    sidecar_path: os.PathLike[str] | str | None = None,
    *,
    dpi: int = 200,
) -> Path:
    """Write PNG and/or PDF with the embedded ID and the sidecar, all-or-nothing; returns the sidecar path."""
    figs = [Path(p) for p in (out_png, out_pdf) if p is not None]
    if not figs:
        raise ValueError("give out_png and/or out_pdf")
    side_path = Path(sidecar_path) if sidecar_path is not None else sidecar_path_for(figs[0])
    pid = sidecar["provenance_id"]
    software = f"autospec {sidecar['code'].get('package_version')} (matplotlib {sidecar['software'].get('matplotlib')})"
    with atomic_outputs(*figs, side_path) as tmps:
        outputs = []
        for target, tmp in zip(figs, tmps):
            rel_side = os.path.relpath(side_path.resolve(), target.resolve().parent)
            if target.suffix.lower() == ".png":
                meta = {PNG_KEY: pid, PNG_SIDECAR_KEY: rel_side, "Software": software}
                fig.savefig(tmp, format="png", dpi=dpi, metadata=meta)
            elif target.suffix.lower() == ".pdf":
                meta = {
                    "Keywords": f"{PNG_KEY}={pid} {PNG_SIDECAR_KEY}={rel_side}",
                    "Subject": f"autospec figure, provenance {pid}",
                    "Creator": software,
                }
                fig.savefig(tmp, format="pdf", metadata=meta)
            else:
                raise ValueError(f"{target}: figures are written as .png or .pdf")
            outputs.append(
                {
                    "path": str(target),
                    "abspath": str(target.resolve()),
                    "sha256": sha256_file(tmp),
                    "bytes": tmp.stat().st_size,
                }
            )
        full = dict(sidecar, outputs=outputs)
        tmps[-1].write_text(json.dumps(full, indent=2, sort_keys=True, default=str) + "\n")
    return side_path


# --------------------------------------------------------------------------- BIDS derivatives
def git_remote_url(start: Path | None = None) -> str | None:
    here = Path(start or __file__).resolve().parent
    try:
        url = subprocess.run(
            ["git", "remote", "get-url", "origin"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return url or None


def write_dataset_description(
    results_dir: os.PathLike[str] | str, name: str = "AutoSpec spectral introspection"
) -> Path:
    """``results_dir/dataset_description.json`` in BIDS-derivatives style."""
    code = code_version()
    desc = {
        "Name": name,
        "BIDSVersion": "1.10.0",
        "DatasetType": "derivative",
        "GeneratedBy": [
            {
                "Name": "autospec",
                "Version": code.get("package_version"),
                "CodeURL": git_remote_url(),
                "Commit": code.get("git_commit"),
                "Description": "exact per-layer, per-group singular-value spectra of weight gradients"
                + (" (uncommitted changes present)" if code.get("git_dirty") else ""),
            }
        ],
    }
    out = Path(results_dir) / "dataset_description.json"
    write_text_atomic(out, json.dumps(desc, indent=2) + "\n")
    return out
