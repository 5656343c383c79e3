"""Manifests: the JSON sidecar that says what an output was made from.

Every step output ``X`` has ``X.manifest.json`` (or a directory-level ``manifest.json``)
holding the sha256 of each input file, the parameters, package and code versions. Later steps
record the manifests of their inputs, so a chain of manifests leads back to raw files.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .atomic import sha256_file, write_text_atomic
from .versions import code_version, host_info, package_versions

SCHEMA = "autospec-manifest/1"


def file_record(path: os.PathLike | str) -> dict[str, Any]:
    p = Path(path)
    return {"path": str(p), "sha256": sha256_file(p), "bytes": p.stat().st_size}


def build_manifest(
    step: str,
    inputs: Sequence[os.PathLike | str] = (),
    outputs: Sequence[os.PathLike | str] = (),
    params: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A manifest dict for one step (inputs and outputs are hashed now)."""
    return {
        "schema": SCHEMA,
        "step": step,
        "created": _dt.datetime.now(_dt.UTC).isoformat(),
        "inputs": [file_record(p) for p in inputs],
        "outputs": [file_record(p) for p in outputs],
        "params": dict(params or {}),
        "versions": package_versions(),
        "code": code_version(),
        "host": host_info(),
        **dict(extra or {}),
    }


def write_manifest(path: os.PathLike | str, manifest: Mapping[str, Any]) -> None:
    write_text_atomic(path, json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")


def read_manifest(path: os.PathLike | str) -> dict[str, Any]:
    with open(path) as fh:
        return json.load(fh)
