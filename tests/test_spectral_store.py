"""The spectra file: Parquet long table, readable by plain pandas, written atomically."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autospec import SpectralRecorder, SpectraWriter


def _run(path, steps=3, fail_at=None):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 2))
    rec = SpectralRecorder(model)
    x, y, g = torch.randn(8, 6), torch.randint(0, 2, (8,)), torch.tensor([0, 1] * 4)
    snaps = []
    with SpectraWriter(path, metadata={"run": "test"}) as w:
        for step in range(steps):
            if step == fail_at:
                raise RuntimeError("diverged")
            model.zero_grad()
            with rec.record(groups=g) as snap:
                F.cross_entropy(model(x), y).backward()
            w.write(snap)
            snaps.append(snap)
    return snaps


def test_written_file_is_a_long_table_pandas_reads_alone(tmp_path):
    path = tmp_path / "spectra.parquet"
    snaps = _run(path)
    df = pd.read_parquet(path)  # no autospec import needed to read it
    assert list(df.columns) == ["step", "key", "stat", "group", "index", "value", "rank_zero", "error_bound"]
    assert df["rank_zero"].dtype == bool
    assert (df["error_bound"] == 0.0).all()  # exact routes
    assert str(df["step"].dtype) == "int64" and str(df["index"].dtype) == "int32"
    assert df["value"].dtype == np.float64
    assert sorted(df["step"].unique()) == [0, 1, 2]
    assert set(df["stat"]) == {"grad", "act", "delta"} and set(df["group"]) == {-1, 0, 1}
    sel = df[(df.step == 2) & (df.key == "0.weight") & (df.stat == "grad") & (df.group == 1)].sort_values("index")
    np.testing.assert_array_equal(sel["value"].to_numpy(), snaps[2].singular_values("0.weight", "grad", 1))
    meta = pq.read_schema(path).metadata
    assert json.loads(meta[b"autospec.metadata"]) == {"run": "test"}
    assert json.loads(meta[b"autospec.schema"])["id"] == "autospec-spectra/3"


def test_a_failed_run_leaves_no_file_and_no_temp(tmp_path):
    path = tmp_path / "spectra.parquet"
    with pytest.raises(RuntimeError):
        _run(path, fail_at=2)
    assert list(tmp_path.iterdir()) == []


def test_files_of_schema_1_read_with_rank_zero_all_false(tmp_path):
    """A file written before rank_zero existed (six columns) reads with the column all False."""
    from autospec.spectral import read_spectra

    old = pd.DataFrame(
        {"step": np.zeros(3, np.int64), "key": ["w"] * 3, "stat": ["grad"] * 3, "group": np.full(3, -1, np.int64),
         "index": np.arange(3, dtype=np.int32), "value": [2.0, 1.0, 1e-9]}
    )  # fmt: skip
    old.to_parquet(tmp_path / "old.parquet", index=False)
    df = read_spectra(tmp_path / "old.parquet")
    assert df["rank_zero"].dtype == bool and not df["rank_zero"].any()
    assert (df["error_bound"] == 0.0).all()  # files before schema /3 hold exact values only


def test_a_frame_without_rank_zero_is_written_with_it_derived(tmp_path):
    """Frames built without the column (e.g. by older callers) get rank_zero = (value == 0.0)."""
    snaps = _run(tmp_path / "a.parquet", steps=1)
    frame = snaps[0].to_frame().drop(columns="rank_zero")
    with SpectraWriter(tmp_path / "b.parquet") as w:
        w.write_frame(frame)
    a, b = pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet")
    pd.testing.assert_frame_equal(a, b)
