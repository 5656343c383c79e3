"""One writer per run directory (autospec.runlock): a second writer exits 2 naming the holder; the
kernel releases the lock of a killed run, which then resumes byte-identical."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hostile_cases import cli, dataset

from autospec.errors import InputError
from autospec.rundir import RunDir
from autospec.runlock import LOCK_NAME, RunDirLocked, run_lock
from autospec.training import load_run_config, train

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src"), "PYTHONUNBUFFERED": "1"}


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "run"
    with run_lock(out) as lock:
        info = json.loads(lock.read_text())
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
        with pytest.raises(RunDirLocked) as err, run_lock(out):  # another open file description
            pass
        msg = str(err.value)
        assert f"pid {os.getpid()} on host {socket.gethostname()}, started {info['started']}" in msg
        assert msg.startswith(f"--out {out}: in use by another writer") and isinstance(err.value, InputError)
    with run_lock(out):  # released on exit
        pass


def test_a_failed_start_in_a_new_directory_leaves_nothing(tmp_path):
    rc, err = cli("train", "--config", tmp_path / "none.yaml", "--out", tmp_path / "new" / "run")
    assert rc == 2 and "run config file not found" in err
    assert not (tmp_path / "new" / "run").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    rc, err = cli("train", "--config", tmp_path / "none.yaml", "--out", existing)
    assert rc == 2 and list(existing.iterdir()) == []  # no lock file left in a directory that was there
    rc, err = cli("train", "--config", tmp_path / "none.yaml", "--out", "")
    assert rc == 2 and "--out: an empty path" in err
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="exists and is not a directory"), run_lock(tmp_path / "file"):
        pass


def _config(tmp_path: Path, epochs: int) -> Path:
    cfg = tmp_path / "run.yaml"
    doc = {
        "data": str(dataset(tmp_path, n=48, d=64)),
        "model": {"family": "mlp", "hidden": [32]},
        "training": {"epochs": epochs, "lr": 0.003, "checkpoint_every": 5, "threads": 1, "device": "cpu"},
        "recording": {"subjects": True, "subject_keys": ["layers.1.*"]},
    }
    cfg.write_text(yaml.safe_dump(doc))
    return cfg


@pytest.mark.timeout(300)
def test_second_writer_refused_then_kill_releases_and_resume_is_byte_identical(tmp_path):
    cfg = _config(tmp_path, epochs=300)
    train(load_run_config(cfg), tmp_path / "ref", progress=False)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "autospec", "train", "--config", str(cfg), "--out", str(out), "--no-progress"]
    first = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not RunDir(out).checkpoint.exists():
            assert first.poll() is None, "the first run ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.005)
        # freeze the first run (it keeps its lock): a refusal that takes longer than the rest of the
        # run on a loaded machine (9 s measured, against 6 s left of the run) must not race its end
        first.send_signal(signal.SIGSTOP)
        second = subprocess.run(cmd, check=False, env=ENV, capture_output=True, text=True, timeout=120)
        assert first.poll() is None, "the first run finished before the second tried"
        assert second.returncode == 2, second.stderr
        assert second.stderr.count("\n") == 1 and f"pid {first.pid} on host {socket.gethostname()}" in second.stderr
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=30) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
    assert RunDir(out).checkpoint.exists() and not RunDir(out).spectra.exists()
    done = subprocess.run(
        cmd, check=False, env=ENV, capture_output=True, text=True, timeout=300
    )  # the kernel released the lock
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "run.json").read_text())["resumed_at_epochs"]
    for name in ("spectra.parquet", "subject_spectra.parquet", "model.pt", "subjects.tsv", "metrics.tsv"):
        if name == "metrics.tsv":  # wall times differ; the numbers per epoch must not
            strip = lambda p: [ln.split("\t")[:3] for ln in p.read_text().splitlines()]  # noqa: E731
            assert strip(tmp_path / "ref" / name) == strip(out / name)
        else:
            assert (tmp_path / "ref" / name).read_bytes() == (out / name).read_bytes(), name
    assert (out / LOCK_NAME).exists()  # left in place, described, never an output
    assert LOCK_NAME not in json.loads((out / "run.json").read_text())["outputs"]
