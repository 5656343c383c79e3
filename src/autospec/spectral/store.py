"""The spectra file: one Parquet long table per run, readable by pandas without autospec.

Columns (one row per singular value), schema ``autospec-spectra/3``:

=========  =======  ============================================================
column     type     meaning
=========  =======  ============================================================
step       int64    recorded step (epoch in full-batch training), 0-based
key        string   parameter name as in ``model.named_parameters()``
stat       string   ``grad`` (σ of G = AᵀΔ), ``act`` (σ of A), ``delta`` (σ of Δ)
group      int64    group id of the samples used; -1 = the whole batch
index      int32    position in the descending list of singular values, 0-based
value      float64  the singular value (NaN if the gradient was not finite)
rank_zero  bool     True ⇔ the value lies beyond the numerical rank; it is then exactly 0.0
error_bound float64 0.0 for the exact routes; for top-k values found by iteration
                    (``method=``) a residual bound r: a singular value lies within r
=========  =======  ============================================================

``rank_zero``: values at or below ``max(m, n) · eps · σ₁`` (eps of the dtype the layer computed in,
float32 for float32 and autocast layers) are rounding noise or structural zeros; they are stored
as 0.0 and flagged, so ``rank_zero == (value == 0.0)``. Files of schema ``/1`` have no such
column; :func:`read_spectra` returns it as all False for them, and ``error_bound`` as 0.0 for
files of schemas ``/1`` and ``/2`` (which only had exact values).

Spectra along the weight-sharing dimension (``SpectralRecorder(sharing=True)``) go to the sibling
``<stem>.sharing.parquet`` (:mod:`.store_sharing`).

Singular vectors (``SpectralRecorder(subspaces=k)``) go to a sibling file
``<stem>.subspaces.parquet`` (:func:`subspaces_path`), one row per vector, schema
``autospec-subspaces/1``:

=======  ==============  ==================================================================
step     int64           recorded step
key      string          parameter name
group    int64           group id; -1 = the whole batch
side     string          ``left`` (output space, length n_out) or ``right`` (input space, n_in)
index    int32           which singular vector (0 = largest σ); at most min(k, numerical rank)
sigma    float64         its singular value
vector   list<float64>   the unit vector; sign fixed so the largest-|.| entry of ``right`` is > 0
=======  ==============  ==================================================================

Principal angles between two groups are computed from these vectors
(:func:`read_principal_angles`, the same function as ``Snapshot.principal_angles``): for K groups
there are K(K−1)/2 pairs, so the vectors, not the pairs, are stored.

The schemas and the run's own metadata are stored as JSON in the Parquet key-value metadata
(``autospec.schema``, ``autospec.metadata``). Both files are written to temp files beside the
targets and renamed on :meth:`SpectraWriter.close` (the subspaces file first), so a spectra file
at the final path is always complete, and so is its sibling.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .parquet_io import schema_meta, temp_beside
from .store_sharing import SharingWriter, sharing_frame
from .subspaces import principal_angles

if TYPE_CHECKING:
    from .snapshot import Snapshot

SCHEMA_ID = "autospec-spectra/3"
SUBSPACES_SCHEMA_ID = "autospec-subspaces/1"
COLUMNS = {
    "step": "recorded step (epoch in full-batch training), 0-based",
    "key": "parameter name as in model.named_parameters()",
    "stat": "grad = sigma(A^T Delta), act = sigma(A), delta = sigma(Delta)",
    "group": "group id of the samples used; -1 = whole batch",
    "index": "0-based position in the descending singular values",
    "value": "singular value, float64 (NaN when the gradient was not finite)",
    "rank_zero": "True iff the value is beyond the numerical rank (max(m,n)*eps(layer dtype)*sigma_1); it is then 0.0",
    "error_bound": "0 for exact values; top-k iteration: a singular value lies within this distance of the value",
}
#: the columns every spectra file has (``rank_zero`` is absent from files of schema ``/1``)
REQUIRED_COLUMNS = ("step", "key", "stat", "group", "index", "value")
ARROW_SCHEMA = pa.schema(
    [
        ("step", pa.int64()),
        ("key", pa.string()),
        ("stat", pa.string()),
        ("group", pa.int64()),
        ("index", pa.int32()),
        ("value", pa.float64()),
        ("rank_zero", pa.bool_()),
        ("error_bound", pa.float64()),
    ]
)
SUBSPACE_COLUMNS = {
    "step": "recorded step",
    "key": "parameter name",
    "group": "group id; -1 = whole batch",
    "side": "left = output space (n_out), right = input space (n_in)",
    "index": "which singular vector, 0 = largest sigma",
    "sigma": "its singular value",
    "vector": "unit singular vector (sign: largest-|entry| of the right vector positive)",
}
SUBSPACE_SCHEMA = pa.schema(
    [
        ("step", pa.int64()),
        ("key", pa.string()),
        ("group", pa.int64()),
        ("side", pa.string()),
        ("index", pa.int32()),
        ("sigma", pa.float64()),
        ("vector", pa.list_(pa.float64())),
    ]
)


def frame_from_snapshot(snap: Snapshot) -> pd.DataFrame:
    """The snapshot's long table, built with whole-array operations (fast with many groups)."""
    items = snap.items() if snap.recorded else []
    if not items:
        return empty_frame()
    ranks, bounds = snap.ranks(), snap.bounds()
    lens = np.array([len(v) for _, v in items], dtype=np.int64)
    index = np.concatenate([np.arange(n, dtype=np.int32) for n in lens])
    rank_rows = np.repeat(np.array([ranks[k] for k, _ in items], dtype=np.int64), lens)
    value = np.concatenate([np.asarray(v, dtype=np.float64) for _, v in items])
    return pd.DataFrame(
        {
            "step": np.full(int(lens.sum()), snap.step, dtype=np.int64),
            "key": np.repeat(np.array([k for (k, _, _), _ in items], dtype=object), lens),
            "stat": np.repeat(np.array([s for (_, s, _), _ in items], dtype=object), lens),
            "group": np.repeat(np.array([g for (_, _, g), _ in items], dtype=np.int64), lens),
            "index": index,
            "value": value,
            "rank_zero": (index >= rank_rows) & ~np.isnan(value),  # a NaN spectrum has no rank
            "error_bound": np.concatenate([bounds.get(k, np.zeros(len(v))) for k, v in items]),
        }
    )


def vectors_frame(snap: Snapshot) -> pd.DataFrame:
    rows: dict[str, list[Any]] = {c: [] for c in SUBSPACE_SCHEMA.names}
    for (key, group, side), vecs in snap.vector_items() if snap.recorded else []:
        sigma = snap.singular_values(key, "grad", None if group == -1 else group)
        for i, v in enumerate(vecs):
            for col, val in zip(SUBSPACE_SCHEMA.names, (snap.step, key, group, side, i, float(sigma[i]), v.tolist())):
                rows[col].append(val)
    if not rows["step"]:
        return SUBSPACE_SCHEMA.empty_table().to_pandas()
    return pa.table(rows, schema=SUBSPACE_SCHEMA).to_pandas()


def empty_frame() -> pd.DataFrame:
    return ARROW_SCHEMA.empty_table().to_pandas()


def subspaces_path(path: os.PathLike[str] | str) -> Path:
    """Where the singular vectors of the spectra file ``path`` are (``<stem>.subspaces.parquet``)."""
    p = Path(path)
    return p.with_name(f"{p.stem}.subspaces.parquet")


class SpectraWriter:
    """Stream snapshots into one Parquet file; the file appears complete on ``close()``.

    Parameters
    ----------
    path : path of the final ``.parquet`` file.
    metadata : JSON-serialisable run metadata stored in the file.
    """

    def __init__(self, path: os.PathLike[str] | str, metadata: Mapping[str, Any] | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.metadata = dict(metadata or {})
        self._tmp = temp_beside(self.path)
        schema = ARROW_SCHEMA.with_metadata(schema_meta(SCHEMA_ID, COLUMNS, self.metadata))
        self._writer = pq.ParquetWriter(self._tmp, schema)
        self._sub: pq.ParquetWriter | None = None
        self._sub_tmp: Path | None = None
        self._sharing: SharingWriter | None = None
        self.rows = 0

    def write_frame(self, df: pd.DataFrame) -> None:
        """Append rows; a frame without ``rank_zero`` gets it from ``value == 0.0`` (equivalent
        for recorded spectra, whose values beyond the rank are exactly 0.0), one without
        ``error_bound`` 0.0 (exact values)."""
        if len(df):
            if "rank_zero" not in df.columns:
                df = df.assign(rank_zero=df["value"].to_numpy() == 0.0)
            if "error_bound" not in df.columns:
                df = df.assign(error_bound=np.zeros(len(df)))
            table = pa.Table.from_pandas(df[list(ARROW_SCHEMA.names)], schema=self._writer.schema, preserve_index=False)
            self._writer.write_table(table)
            self.rows += len(df)

    def write_vectors(self, df: pd.DataFrame) -> None:
        """Append rows of the subspaces table (opens the sibling file on first use)."""
        if not len(df):
            return
        if self._sub is None:
            self._sub_tmp = temp_beside(subspaces_path(self.path))
            meta = schema_meta(SUBSPACES_SCHEMA_ID, SUBSPACE_COLUMNS, {**self.metadata, "spectra_file": self.path.name})
            self._sub = pq.ParquetWriter(self._sub_tmp, SUBSPACE_SCHEMA.with_metadata(meta))
        table = pa.Table.from_pandas(df[list(SUBSPACE_SCHEMA.names)], schema=self._sub.schema, preserve_index=False)
        self._sub.write_table(table)

    def write_sharing(self, df: pd.DataFrame, layout: Mapping[str, Any]) -> None:
        """Append rows of the sharing-dimension table (opens the sibling file on first use)."""
        if not len(df):
            return
        if self._sharing is None:
            self._sharing = SharingWriter(self.path, self.metadata, layout)
        self._sharing.write(df)

    def write(self, snapshot: Snapshot) -> None:
        """Append one :class:`~autospec.spectral.snapshot.Snapshot` (skipped steps add nothing);
        waits for its values when they are still being computed."""
        if snapshot.recorded:
            self.write_frame(snapshot.to_frame())
            self.write_vectors(snapshot.vectors_frame())
            self.write_sharing(sharing_frame(snapshot), snapshot.sharing_layout())

    def close(self) -> Path:
        self._writer.close()
        if self._sub is not None and self._sub_tmp is not None:
            self._sub.close()
            os.replace(self._sub_tmp, subspaces_path(self.path))
        if self._sharing is not None:
            self._sharing.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            self._writer.close()
            if self._sub is not None:
                self._sub.close()
            if self._sharing is not None:
                self._sharing.abort()
        finally:
            self._tmp.unlink(missing_ok=True)
            if self._sub_tmp is not None:
                self._sub_tmp.unlink(missing_ok=True)

    def __enter__(self) -> SpectraWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def read_spectra(path: os.PathLike[str] | str) -> pd.DataFrame:
    """Read a spectra file (plain ``pandas.read_parquet`` works too); ``rank_zero`` and
    ``error_bound`` are always present."""
    df = pd.read_parquet(path)
    if "rank_zero" not in df.columns:  # schema /1: written before numerical ranks were flagged
        df["rank_zero"] = np.zeros(len(df), dtype=bool)
    if "error_bound" not in df.columns:  # schemas /1, /2: exact values only
        df["error_bound"] = np.zeros(len(df))
    return df


def read_metadata(path: os.PathLike[str] | str) -> dict[str, Any]:
    meta = pq.read_schema(path).metadata or {}
    out: dict[str, Any] = json.loads(meta.get(b"autospec.metadata", b"{}"))
    return out


def read_subspaces(path: os.PathLike[str] | str) -> pd.DataFrame:
    """The singular vectors stored beside the spectra file ``path`` (or the subspaces file itself)."""
    p = Path(path)
    sub = p if p.name.endswith(".subspaces.parquet") else subspaces_path(p)
    if not sub.exists():
        raise FileNotFoundError(f"{sub}: no singular vectors (record with SpectralRecorder(subspaces=k))")
    return pd.read_parquet(sub)


def read_principal_angles(
    path: os.PathLike[str] | str, key: str, g1: int, g2: int, *, k: int | None = None, side: str = "right"
) -> pd.DataFrame:
    """Principal angles (radians) between groups ``g1`` and ``g2`` (-1 = whole) at every stored step.

    Columns step, index (0 = smallest angle), angle. Steps where a group has fewer than ``k``
    vectors (numerical rank below k) are left out; ``k`` defaults to the most both have per step.
    """
    df = read_subspaces(path)
    df = df[(df["key"] == key) & (df["side"] == side) & df["group"].isin([g1, g2])]
    if df.empty:
        raise KeyError(f"no {side} singular vectors for {key!r}, groups {g1} and {g2}")
    out = []
    for step, at in df.groupby("step", sort=True):
        va = _stack(at[at["group"] == g1])
        vb = _stack(at[at["group"] == g2])
        kk = min(len(va), len(vb)) if k is None else k
        if kk < 1 or kk > min(len(va), len(vb)):
            continue
        theta = principal_angles(va[:kk], vb[:kk])
        out.append(pd.DataFrame({"step": step, "index": np.arange(kk, dtype=np.int32), "angle": theta}))
    with contextlib.suppress(ValueError):
        return pd.concat(out, ignore_index=True)
    return pd.DataFrame({"step": pd.Series(dtype=np.int64), "index": pd.Series(dtype=np.int32), "angle": []})


def _stack(rows: pd.DataFrame) -> np.ndarray:
    rows = rows.sort_values("index")
    return np.array([np.asarray(v, dtype=np.float64) for v in rows["vector"]]).reshape(len(rows), -1)
