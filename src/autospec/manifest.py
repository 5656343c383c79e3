"""Manifests: the JSON sidecar that says what an output was made from (the one writer of them).

Every step output ``X`` has ``X.manifest.json`` (or a directory-level ``manifest.json``)
holding the sha256 of each input file, the parameters, package and code versions. Later steps
record the manifests of their inputs (``inputs[i].manifest``: path and sha256), so a chain of
manifests leads back to raw files and ``autospec audit`` knows which manifests must exist: a
deleted one is reported, never skipped.

Steps write outputs and manifest together with :func:`write_with_manifest` (all or nothing), or,
inside their own :func:`~autospec.atomic.atomic_outputs` block, pass ``(final, temporary)`` pairs
as ``outputs`` of :func:`build_manifest` (the temporaries are hashed, the final names recorded)
and write :func:`manifest_text` into the manifest's own temporary.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .atomic import atomic_outputs, sha256_file, write_text_atomic
from .errors import InputError
from .versions import code_version, host_info, package_versions

SCHEMA = "autospec-manifest/1"
#: a path, or (final path recorded, file hashed now) for outputs still under a temporary name
PathOrPair = os.PathLike[str] | str | tuple[os.PathLike[str] | str, os.PathLike[str] | str]


def find_manifest(path: os.PathLike[str] | str) -> Path | None:
    """``X.manifest.json`` beside X, else ``manifest.json`` in X's directory, else None."""
    p = Path(path)
    beside = p.with_name(p.name + ".manifest.json")
    if beside.is_file():
        return beside
    if p.name.endswith("manifest.json"):
        return None  # a manifest is not described by itself or its neighbour
    in_dir = p.parent / "manifest.json"
    return in_dir if in_dir.is_file() else None


def file_record(path: PathOrPair) -> dict[str, Any]:
    """Path, sha256 and size of one file; a ``(final, temporary)`` pair records the final name."""
    final, actual = (Path(path[0]), Path(path[1])) if isinstance(path, tuple) else (Path(path), Path(path))
    return {"path": str(final), "sha256": sha256_file(actual), "bytes": actual.stat().st_size}


def input_record(path: os.PathLike[str] | str, own: Sequence[Path] = ()) -> dict[str, Any]:
    """:func:`file_record` plus the input's own manifest (path, sha256) when it has one.

    ``own``: the manifests of the step being recorded (never an input's manifest: an input in
    the step's output directory, like a run's run.yaml, is not described by the step's manifest).
    """
    rec = file_record(path)
    m = find_manifest(path)
    if m is not None and m.resolve() not in {o.resolve() for o in own}:
        rec["manifest"] = {"path": str(m), "sha256": sha256_file(m)}
    return rec


def _own_manifests(outputs: Sequence[PathOrPair]) -> list[Path]:
    finals = [Path(o[0] if isinstance(o, tuple) else o) for o in outputs]
    return [p for f in finals for p in (f.parent / "manifest.json", f.with_name(f.name + ".manifest.json"))]


def build_manifest(
    step: str,
    inputs: Sequence[os.PathLike[str] | str] = (),
    outputs: Sequence[PathOrPair] = (),
    params: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A manifest dict for one step (inputs and outputs are hashed now)."""
    return {
        "schema": SCHEMA,
        "step": step,
        "created": _dt.datetime.now(_dt.UTC).isoformat(),
        "inputs": [input_record(p, own=_own_manifests(outputs)) for p in inputs],
        "outputs": [file_record(p) for p in outputs],
        "params": dict(params or {}),
        "versions": package_versions(),
        "code": code_version(),
        "host": host_info(),
        **dict(extra or {}),
    }


def manifest_text(manifest: Mapping[str, Any]) -> str:
    """The manifest as written: indented JSON, sorted keys, newline-terminated."""
    return json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"


def write_manifest(path: os.PathLike[str] | str, manifest: Mapping[str, Any]) -> None:
    write_text_atomic(path, manifest_text(manifest))


def write_with_manifest(
    outputs: Sequence[os.PathLike[str] | str],
    manifest: os.PathLike[str] | str,
    write: Callable[[Sequence[Path]], None],
    step: str,
    *,
    inputs: Sequence[os.PathLike[str] | str] = (),
    params: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write ``outputs`` (``write`` fills their temporaries) and their manifest, all or nothing.

    Nothing appears at the final names unless every output and the manifest were written: a full
    disk while writing the manifest leaves no output without one.
    """
    finals = [Path(p) for p in outputs]
    with atomic_outputs(*finals, manifest) as temps:
        write(temps[:-1])
        man = build_manifest(step, inputs, outputs=list(zip(finals, temps[:-1])), params=params, extra=extra)
        temps[-1].write_text(manifest_text(man))


def read_manifest(path: os.PathLike[str] | str) -> dict[str, Any]:
    """A manifest as a dict; InputError (naming the file) when unreadable or not a JSON object."""
    p = Path(path)
    try:
        data = json.loads(p.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise InputError(f"{p}: manifest not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InputError(f"{p}: unreadable manifest ({' '.join(str(err).split())})") from None
    if not isinstance(data, dict):
        raise InputError(f"{p}: not a manifest (a JSON {type(data).__name__}, not an object)")
    return data
