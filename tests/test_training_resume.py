"""Checkpoints and resume: a run killed with SIGKILL and restarted ends byte-identical to an
uninterrupted run; the checkpoint loads without unpickling; a changed config is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from autospec.data.dataset import Dataset, save_dataset
from autospec.errors import InputError
from autospec.rundir import RunDir
from autospec.training import load_run_config, train

OUTPUTS = ("spectra.parquet", "subject_spectra.parquet", "model.pt", "subjects.tsv")


def make_data(path: Path, n: int, shape, meta, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    save_dataset(path, Dataset(
        X=rng.normal(size=(n, *shape)).astype(np.float32), y=np.arange(n) % 3, groups=np.arange(n) % 2,
        subject_ids=[f"sub-{i:03d}" for i in range(n)], class_names=["a", "b", "c"], group_names=["g0", "g1"],
        meta=meta,
    ))  # fmt: skip
    return path


def same_outputs(a: Path, b: Path) -> None:
    for name in OUTPUTS:
        if (a / name).exists() or (b / name).exists():
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for d in (a, b):
        assert not RunDir(d).checkpoint.exists() and not RunDir(d).checkpoint_parts.exists()


def test_sigkill_and_restart_ends_byte_identical(tmp_path):
    # full batch with N (48) < n_in (64): the first layer takes the recorder's cached-input route,
    # so the restart must rebuild that cache to give the same bits
    data = make_data(tmp_path / "d.npz", 48, (64,), {"kind": "volumes"})
    cfg = {"data": str(data), "model": {"family": "mlp", "hidden": [32]},
           "training": {"epochs": 150, "lr": 0.003, "checkpoint_every": 5, "threads": 1, "device": "cpu"},
           "recording": {"subjects": True, "subject_keys": ["layers.1.*"]}}  # fmt: skip
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    train(load_run_config(tmp_path / "run.yaml"), tmp_path / "ref", progress=False)

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "autospec", "train", "--config", str(tmp_path / "run.yaml"), "--out", str(out)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not RunDir(out).checkpoint.exists():
        assert proc.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint after 60 s"
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert RunDir(out).checkpoint.exists() and not RunDir(out).spectra.exists()
    killed_at = torch.load(RunDir(out).checkpoint, weights_only=True)["epoch"]
    assert 0 < killed_at < 150

    done = subprocess.run(cmd + ["--no-progress"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    rj = json.loads((out / "run.json").read_text())
    assert rj["status"] == "completed" and rj["resumed_at_epochs"] and rj["resumed_at_epochs"][0] >= killed_at
    same_outputs(tmp_path / "ref", out)
    assert len((out / "metrics.tsv").read_text().splitlines()) == 151


class Crash(Exception):
    pass


def _crash_at(epoch: int):
    def cb(e: int) -> None:
        if e == epoch:
            raise Crash()

    return cb


@pytest.mark.parametrize("family, shape, batch, every", [
    ("bert", (4, 3), 5, 1),  # mini-batches, generic-path weight, two recorders
    ("mlp", (30,), None, 2),  # full batch, cached-input route, recording every 2nd epoch
    ("cnn1d", (6, 3), 4, 3),
])  # fmt: skip
def test_crash_and_resume_in_process_is_identical(tmp_path, family, shape, batch, every):
    data = make_data(tmp_path / "d.npz", 12, shape, {"kind": "timecourses", "axes": ["s", "time", "c"]})
    cfg = load_run_config({
        "data": str(data), "model": {"family": family, "hidden": [8], "options": {"nhead": 2} if family == "bert" else {}},
        "training": {"epochs": 11, "lr": 0.01, "batch_size": batch, "checkpoint_every": 3, "device": "cpu"},
        "recording": {"every": every, "subjects": True},
    })  # fmt: skip
    train(cfg, tmp_path / "ref", progress=False)
    with pytest.raises(Crash):
        train(cfg, tmp_path / "run", progress=False, on_epoch=_crash_at(7))
    parts = sorted(p.name for p in RunDir(tmp_path / "run").checkpoint_parts.iterdir())
    assert parts == [f"{k}.e{e:06d}.parquet" for k in ("spectra", "subject_spectra") for e in (3, 6)]
    assert not (tmp_path / "run" / "spectra.parquet").exists()  # no partial final output
    assert not list((tmp_path / "run").glob(".*.tmp"))
    res = train(cfg, tmp_path / "run", progress=False)
    assert res.resumed_from == 6 and res.status == "completed"
    same_outputs(tmp_path / "ref", tmp_path / "run")


def test_checkpoint_loads_with_weights_only_and_holds_the_state(tmp_path):
    data = make_data(tmp_path / "d.npz", 10, (6,), {"kind": "volumes"})
    cfg = load_run_config({"data": str(data), "model": {"family": "mlp", "hidden": [4]},
                           "training": {"epochs": 9, "checkpoint_every": 4, "device": "cpu"}})  # fmt: skip
    with pytest.raises(Crash):
        train(cfg, tmp_path / "run", progress=False, on_epoch=_crash_at(4))
    blob = torch.load(RunDir(tmp_path / "run").checkpoint, weights_only=True)
    assert blob["epoch"] == 4 and blob["rec_steps"] == {"main": 4}
    assert set(blob["rng"]) >= {"torch", "numpy", "python", "batches"}
    assert blob["metrics"]["epoch"].tolist() == [0, 1, 2, 3] and blob["metrics"]["recorded"].all()
    assert blob["model"]["layers.0.weight"].shape == (4, 6) and blob["optimizer"]["state"]
    assert [p["name"] for p in blob["parts"]] == ["spectra.e000004.parquet"]


def test_changed_config_with_a_checkpoint_is_refused(tmp_path):
    data = make_data(tmp_path / "d.npz", 10, (6,), {"kind": "volumes"})
    doc = {"data": str(data), "model": {"family": "mlp", "hidden": [4]},
           "training": {"epochs": 9, "checkpoint_every": 2, "device": "cpu"}}  # fmt: skip
    with pytest.raises(Crash):
        train(load_run_config(doc), tmp_path / "run", progress=False, on_epoch=_crash_at(3))
    doc["training"]["lr"] = 0.5
    with pytest.raises(InputError, match=r"checkpoint\.pt: written by a different run config"):
        train(load_run_config(doc), tmp_path / "run", progress=False)
    assert RunDir(tmp_path / "run").checkpoint.exists()  # left for the user to decide


def test_part_not_listed_in_the_checkpoint_is_ignored(tmp_path):
    """A kill between writing a part and committing checkpoint.pt leaves an unlisted part."""
    data = make_data(tmp_path / "d.npz", 10, (6,), {"kind": "volumes"})
    cfg = load_run_config({"data": str(data), "model": {"family": "mlp", "hidden": [4]},
                           "training": {"epochs": 8, "checkpoint_every": 2, "device": "cpu"}})  # fmt: skip
    train(cfg, tmp_path / "ref", progress=False)
    with pytest.raises(Crash):
        train(cfg, tmp_path / "run", progress=False, on_epoch=_crash_at(2))
    parts = RunDir(tmp_path / "run").checkpoint_parts
    (parts / "spectra.e000004.parquet").write_bytes((parts / "spectra.e000002.parquet").read_bytes())
    train(cfg, tmp_path / "run", progress=False)
    same_outputs(tmp_path / "ref", tmp_path / "run")


@pytest.mark.parametrize("batch", [None, 7])
def test_resume_with_held_out_subjects_and_matched_sampling_is_identical(tmp_path, batch):
    rng = np.random.default_rng(1)
    n = 30
    save_dataset(tmp_path / "d.npz", Dataset(
        X=(rng.normal(size=(n, 12)) * 4 + 9).astype(np.float32), y=np.arange(n) % 2, groups=(np.arange(n) < 9).astype(int),
        subject_ids=[f"sub-{i:03d}" for i in range(n)], class_names=["a", "b"], group_names=["g0", "g1"],
        meta={"kind": "volumes", "standardize": "features"},
    ))  # fmt: skip
    cfg = load_run_config({
        "data": str(tmp_path / "d.npz"), "model": {"family": "mlp", "hidden": [8]}, "split": {"kfold": 3, "fold": 1},
        "training": {"epochs": 10, "lr": 0.01, "batch_size": batch, "checkpoint_every": 3, "device": "cpu"},
        "recording": {"subjects": True, "group_sampling": "matched", "sampling_seed": 4},
    })  # fmt: skip
    train(cfg, tmp_path / "ref", progress=False)
    with pytest.raises(Crash):
        train(cfg, tmp_path / "run", progress=False, on_epoch=_crash_at(5))
    assert train(cfg, tmp_path / "run", progress=False).resumed_from == 6
    same_outputs(tmp_path / "ref", tmp_path / "run")
    ref, got = (json.loads(RunDir(tmp_path / d).run_json.read_text()) for d in ("ref", "run"))
    assert got["group_sampling"] == ref["group_sampling"] and len(ref["group_sampling"]["draws"]) == 10
    for d in ("ref", "run"):
        metrics = (tmp_path / d / "metrics.tsv").read_text().splitlines()
        assert metrics[0].endswith("test_loss\ttest_accuracy")
    cols = [[line.split("\t")[i] for line in (tmp_path / d / "metrics.tsv").read_text().splitlines()]
            for d in ("ref", "run") for i in (1, 5, 6)]  # fmt: skip
    assert cols[:3] == cols[3:]  # loss, test_loss, test_accuracy
