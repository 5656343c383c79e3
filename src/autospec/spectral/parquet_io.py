"""Helpers shared by the spectral store's Parquet files: temp files beside the target, and the
schema/metadata block every file carries."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def temp_beside(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    mask = os.umask(0)
    os.umask(mask)
    os.fchmod(fd, 0o666 & ~mask)
    os.close(fd)
    return Path(tmp)


def schema_meta(schema_id: str, columns: Mapping[str, str], metadata: Mapping[str, Any]) -> dict[bytes, bytes]:
    return {
        b"autospec.schema": json.dumps({"id": schema_id, "columns": dict(columns)}).encode(),
        b"autospec.metadata": json.dumps(dict(metadata), default=str).encode(),
    }
