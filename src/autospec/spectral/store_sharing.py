"""Spectra along the weight-sharing dimension: the sibling file ``<stem>.sharing.parquet``.

A weight used several times per sample — a recurrent cell's matrix once per time step, a
token-wise Linear once per token, a convolution once per output position — has the gradient
G = Σ_s G_s, one term per *share* s (paper §2.1). With ``SpectralRecorder(sharing=True)`` the
recorder keeps σ(G_s) for every share, whole batch and per group. One row per singular value,
schema ``autospec-sharing/1``:

==========  =======  ================================================================
step        int64    recorded step
key         string   parameter name
group       int64    group id; -1 = the whole batch
call        int32    which call of the weight in the step (the time step of a cell called
                     once per time step), 0-based in forward order
position    int32    which row of a sample within the call (token of a token-wise Linear,
                     output position of a convolution, row-major over its output dims)
index       int32    position in the descending singular values of G_s, 0-based
value       float64  the singular value of G_s = Σ_{samples of the group} Δ_sᵀ A_s
rank_zero   bool     True ⇔ beyond the numerical rank of G_s (value exactly 0.0)
==========  =======  ================================================================

The file's metadata (``autospec.metadata`` → ``sharing_layout``) says per key how many calls and
positions a step had and the shape of the positions (a convolution's output size), so a position
can be mapped back to its place. Normalisation is the loss's own (as for the spectra file):
Σ_s G_s = G. :func:`read_sharing` reads it back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .parquet_io import schema_meta, temp_beside

if TYPE_CHECKING:
    from .snapshot import Snapshot

SHARING_SCHEMA_ID = "autospec-sharing/1"
SHARING_COLUMNS = {
    "step": "recorded step",
    "key": "parameter name",
    "group": "group id; -1 = whole batch",
    "call": "call of the weight in the step (time step of a recurrent cell), 0-based",
    "position": "row of a sample within the call (token, convolution output position, row-major)",
    "index": "0-based position in the descending singular values of the share's gradient",
    "value": "singular value of the share's gradient G_s (sum over the group's samples)",
    "rank_zero": "True iff beyond the numerical rank of G_s (value is then 0.0)",
}
SHARING_SCHEMA = pa.schema(
    [
        ("step", pa.int64()),
        ("key", pa.string()),
        ("group", pa.int64()),
        ("call", pa.int32()),
        ("position", pa.int32()),
        ("index", pa.int32()),
        ("value", pa.float64()),
        ("rank_zero", pa.bool_()),
    ]
)


def sharing_path(path: os.PathLike[str] | str) -> Path:
    """Where the sharing-dimension spectra of the spectra file ``path`` are."""
    p = Path(path)
    return p.with_name(f"{p.stem}.sharing.parquet")


def sharing_frame(snap: Snapshot) -> pd.DataFrame:
    """The snapshot's sharing-dimension spectra as rows of the table above (empty without them)."""
    items = snap.sharing_items() if snap.recorded else []
    parts = []
    for (key, group), sp in items:
        shares, width = sp.values.shape
        if not shares or not width:
            continue
        index = np.tile(np.arange(width, dtype=np.int32), shares)
        value = sp.values.reshape(-1)
        parts.append(
            pd.DataFrame(
                {
                    "step": np.full(shares * width, snap.step, dtype=np.int64),
                    "key": np.full(shares * width, key, dtype=object),
                    "group": np.full(shares * width, group, dtype=np.int64),
                    "call": np.repeat(sp.call.astype(np.int32), width),
                    "position": np.repeat(sp.position.astype(np.int32), width),
                    "index": index,
                    "value": value,
                    "rank_zero": (index >= np.repeat(sp.ranks, width)) & ~np.isnan(value),
                }
            )
        )
    if not parts:
        return SHARING_SCHEMA.empty_table().to_pandas()
    return pd.concat(parts, ignore_index=True)


class SharingWriter:
    """The sibling sharing file of one spectra file, written to a temp file and renamed on close."""

    def __init__(self, spectra_path: Path, metadata: Mapping[str, Any], layout: Mapping[str, Any]):
        self.path = sharing_path(spectra_path)
        self._tmp = temp_beside(self.path)
        meta = schema_meta(
            SHARING_SCHEMA_ID,
            SHARING_COLUMNS,
            {**metadata, "spectra_file": spectra_path.name, "sharing_layout": dict(layout)},
        )
        self._writer = pq.ParquetWriter(self._tmp, SHARING_SCHEMA.with_metadata(meta))

    def write(self, df: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(df[list(SHARING_SCHEMA.names)], schema=self._writer.schema, preserve_index=False)
        self._writer.write_table(table)

    def close(self) -> None:
        self._writer.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            self._tmp.unlink(missing_ok=True)


def read_sharing(path: os.PathLike[str] | str) -> pd.DataFrame:
    """The sharing-dimension spectra stored beside the spectra file ``path`` (or the file itself)."""
    p = Path(path)
    sub = p if p.name.endswith(".sharing.parquet") else sharing_path(p)
    if not sub.exists():
        raise FileNotFoundError(f"{sub}: no sharing-dimension spectra (record with SpectralRecorder(sharing=True))")
    return pd.read_parquet(sub)


def read_sharing_layout(path: os.PathLike[str] | str) -> dict[str, Any]:
    """Per key: calls and positions per step and the positions' shape (from the file's metadata)."""
    p = Path(path)
    sub = p if p.name.endswith(".sharing.parquet") else sharing_path(p)
    meta = pq.read_schema(sub).metadata or {}
    out: dict[str, Any] = json.loads(meta.get(b"autospec.metadata", b"{}")).get("sharing_layout", {})
    return out
