"""The spectra file: one Parquet long table per run, readable by pandas without autospec.

Columns (one row per singular value):

=========  =======  ============================================================
column     type     meaning
=========  =======  ============================================================
step       int64    recorded step (epoch in full-batch training), 0-based
key        string   parameter name as in ``model.named_parameters()``
stat       string   ``grad`` (σ of G = AᵀΔ), ``act`` (σ of A), ``delta`` (σ of Δ)
group      int64    group id of the samples used; -1 = the whole batch
index      int32    position in the descending list of singular values, 0-based
value      float64  the singular value (NaN if the gradient was not finite)
=========  =======  ============================================================

The schema and the run's own metadata are stored as JSON in the Parquet key-value metadata
(``autospec.schema``, ``autospec.metadata``). Written to a temp file beside the target and
renamed on :meth:`SpectraWriter.close`, so a file at the final path is always complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import _temp_beside

SCHEMA_ID = "autospec-spectra/1"
COLUMNS = {
    "step": "recorded step (epoch in full-batch training), 0-based",
    "key": "parameter name as in model.named_parameters()",
    "stat": "grad = sigma(A^T Delta), act = sigma(A), delta = sigma(Delta)",
    "group": "group id of the samples used; -1 = whole batch",
    "index": "0-based position in the descending singular values",
    "value": "singular value, float64 (NaN when the gradient was not finite)",
}
ARROW_SCHEMA = pa.schema(
    [
        ("step", pa.int64()),
        ("key", pa.string()),
        ("stat", pa.string()),
        ("group", pa.int64()),
        ("index", pa.int32()),
        ("value", pa.float64()),
    ]
)


def frame_from_items(step: int, items: Iterable[tuple[tuple[str, str, int], np.ndarray]]) -> pd.DataFrame:
    parts = []
    for (key, stat, group), vals in items:
        n = len(vals)
        parts.append(
            pd.DataFrame(
                {
                    "step": np.full(n, step, dtype=np.int64),
                    "key": [key] * n,
                    "stat": [stat] * n,
                    "group": np.full(n, group, dtype=np.int64),
                    "index": np.arange(n, dtype=np.int32),
                    "value": np.asarray(vals, dtype=np.float64),
                }
            )
        )
    if not parts:
        return empty_frame()
    return pd.concat(parts, ignore_index=True)


def empty_frame() -> pd.DataFrame:
    return ARROW_SCHEMA.empty_table().to_pandas()


class SpectraWriter:
    """Stream snapshots into one Parquet file; the file appears complete on ``close()``.

    Parameters
    ----------
    path : path of the final ``.parquet`` file.
    metadata : JSON-serialisable run metadata stored in the file.
    """

    def __init__(self, path: os.PathLike | str, metadata: Mapping[str, Any] | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = _temp_beside(self.path)
        meta = {
            b"autospec.schema": json.dumps({"id": SCHEMA_ID, "columns": COLUMNS}).encode(),
            b"autospec.metadata": json.dumps(dict(metadata or {}), default=str).encode(),
        }
        self._writer = pq.ParquetWriter(self._tmp, ARROW_SCHEMA.with_metadata(meta))
        self.rows = 0

    def write_frame(self, df: pd.DataFrame) -> None:
        if len(df):
            table = pa.Table.from_pandas(df[list(ARROW_SCHEMA.names)], schema=self._writer.schema, preserve_index=False)
            self._writer.write_table(table)
            self.rows += len(df)

    def write(self, snapshot) -> None:
        """Append one :class:`~autospec.spectral.snapshot.Snapshot` (skipped steps add nothing)."""
        if snapshot.recorded:
            self.write_frame(snapshot.to_frame())

    def close(self) -> Path:
        self._writer.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()


def read_spectra(path: os.PathLike | str) -> pd.DataFrame:
    """Read a spectra file (plain ``pandas.read_parquet`` works too)."""
    return pd.read_parquet(path)


def read_metadata(path: os.PathLike | str) -> dict[str, Any]:
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta.get(b"autospec.metadata", b"{}"))
