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
    assert list(df.columns) == ["step", "key", "stat", "group", "index", "value", "rank_zero"]
    assert df["rank_zero"].dtype == bool
    assert str(df["step"].dtype) == "int64" and str(df["index"].dtype) == "int32"
    assert df["value"].dtype == np.float64
    assert sorted(df["step"].unique()) == [0, 1, 2]
    assert set(df["stat"]) == {"grad", "act", "delta"} and set(df["group"]) == {-1, 0, 1}
    sel = df[(df.step == 2) & (df.key == "0.weight") & (df.stat == "grad") & (df.group == 1)].sort_values("index")
    np.testing.assert_array_equal(sel["value"].to_numpy(), snaps[2].singular_values("0.weight", "grad", 1))
    meta = pq.read_schema(path).metadata
    assert json.loads(meta[b"autospec.metadata"]) == {"run": "test"}
    assert json.loads(meta[b"autospec.schema"])["id"] == "autospec-spectra/2"


def test_a_failed_run_leaves_no_file_and_no_temp(tmp_path):
    path = tmp_path / "spectra.parquet"
    with pytest.raises(RuntimeError):
        _run(path, fail_at=2)
    assert list(tmp_path.iterdir()) == []
