"""What a user can get wrong around a run — impossible sizes, a full disk, a bad --out, a damaged
checkpoint — ends in one line naming the field or path, exit status 2, and no partial outputs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from autospec.cli import main as cli_main
from autospec.data.dataset import Dataset, save_dataset
from autospec.errors import InputError
from autospec.models import build_model
from autospec.rundir import RunDir
from autospec.training import load_run_config, memory, train


def dataset(path: Path, n=20, d=8) -> Path:
    rng = np.random.default_rng(0)
    save_dataset(
        path,
        Dataset(
            X=rng.normal(size=(n, d)).astype(np.float32),
            y=np.arange(n) % 2,
            groups=np.arange(n) % 2,
            subject_ids=[f"sub-{i:03d}" for i in range(n)],
            class_names=["a", "b"],
            group_names=["g0", "g1"],
            meta={"kind": "volumes"},
        ),
    )
    return path


def write_config(tmp_path: Path, data: Path, hidden=(8,), **training) -> Path:
    cfg = {
        "data": str(data),
        "model": {"family": "mlp", "hidden": list(hidden)},
        "training": {"epochs": 3, "checkpoint_every": 0, "device": "cpu", **training},
    }
    p = tmp_path / "run.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def cli(args, capsys) -> tuple[int, list[str]]:
    rc = cli_main(["train", *map(str, args), "--no-progress"])
    return rc, capsys.readouterr().err.strip().splitlines()


# ---------------------------------------------------------------------------------- memory
def test_impossible_width_is_refused_before_allocating(tmp_path, capsys):
    # each width within the schema's bound (2**20); together a 2**20 x 2**20 weight: 4 TiB
    cfg = write_config(tmp_path, dataset(tmp_path / "d.npz", d=784), hidden=(2**20, 2**20))
    rc, err = cli(["--config", cfg, "--out", tmp_path / "out"], capsys)
    assert rc == 2 and len(err) == 1
    assert err[0].startswith("autospec train: error: run config field model.hidden: the run needs at least ")
    assert "TiB" in err[0] and "available" in err[0]
    assert not (tmp_path / "out").exists()


def test_estimate_counts_parameters_and_module_outputs_exactly():
    cfg = load_run_config({"data": "x.npz", "model": {"family": "lstm", "hidden": [6]}, "recording": {"groups": False}})
    est = memory.estimate(cfg.settings, input_shape=(5, 3), n_classes=2, n_train=4, n_data_elements=60)
    model = build_model("lstm", "classify", (5, 3), 2, hidden=[6], activation="relu")
    assert est.parameters == 16 * sum(p.numel() for p in model.parameters())
    sizes = []
    hooks = [
        m.register_forward_hook(lambda m, a, o: sizes.append(o.numel() * o.element_size()))
        for m in model.modules()
        if not list(m.children())
    ]
    model(torch.zeros(4, 5, 3))
    for h in hooks:
        h.remove()
    assert est.activations == sum(sizes) and est.data == 240 and est.subjects == 0
    assert est.recorder > 0  # ih: 4 × 5 rows of (3 + 24); hh: 4 × 5 rows of (6 + 24)


def test_the_field_named_is_the_one_behind_the_largest_term(tmp_path, monkeypatch):
    data = dataset(tmp_path / "d.npz", n=2000, d=6)
    monkeypatch.setattr(memory, "available_bytes", lambda device: 1000)
    cfg = load_run_config({"data": str(data), "model": {"family": "mlp", "hidden": [4]}, "training": {"device": "cpu"}})
    with pytest.raises(InputError, match=r"^run config field training\.batch_size: the run needs at least"):
        train(cfg, tmp_path / "out", progress=False)
    cfg = load_run_config(
        {
            "data": str(data),
            "model": {"family": "mlp", "hidden": [4]},
            "training": {"device": "cpu"},
            "recording": {"subjects": True},
        }
    )
    with pytest.raises(InputError, match=r"^run config field recording\.subjects:"):
        train(cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------- --out
def test_out_that_is_a_file_is_one_line(tmp_path, capsys):
    cfg = write_config(tmp_path, dataset(tmp_path / "d.npz"))
    (tmp_path / "file").write_text("not a directory")
    rc, err = cli(["--config", cfg, "--out", tmp_path / "file"], capsys)
    assert rc == 2 and err == [f"autospec train: error: --out {tmp_path / 'file'}: exists and is not a directory"]
    rc, err = cli(["--config", cfg, "--out", tmp_path / "file" / "run"], capsys)
    # the run-directory lock is the first thing to touch --out: its one line names the path and why
    assert rc == 2 and len(err) == 1 and f"--out {tmp_path / 'file' / 'run'}: " in err[0]
    assert "Not a directory" in err[0]
    assert (tmp_path / "file").read_text() == "not a directory"


def _namespace_shell() -> list[str] | None:
    """A shell in a private mount namespace (where a test may mount a small tmpfs), or None."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    cmd = [unshare, "-rm", "sh", "-c"]
    probe = subprocess.run([*cmd, "mount -t tmpfs -o size=64k tmpfs /mnt && true"], capture_output=True, check=False)
    return cmd if probe.returncode == 0 else None


SHELL = _namespace_shell()
needs_mounts = pytest.mark.skipif(SHELL is None, reason="cannot mount a tmpfs in a user+mount namespace here")


def _in_mount(tmp_path: Path, options: str, cfg: Path) -> tuple[int, list[str], list[str]]:
    """Train with --out on a tmpfs mounted with ``options``; (exit status, stderr lines, files left)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = (
        f'mount -t tmpfs -o {options} tmpfs "$1" || exit 99; '
        '"$2" -m autospec train --config "$3" --out "$1/run" --no-progress 2>"$4"; echo "rc=$?"; '
        'find "$1" -mindepth 1 -printf "%P\\n"'
    )
    done = subprocess.run(
        [*SHELL, script, "sh", str(mnt), sys.executable, str(cfg), str(tmp_path / "err")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = done.stdout.splitlines()
    assert lines and lines[0].startswith("rc="), (done.stdout, done.stderr)
    return int(lines[0][3:]), (tmp_path / "err").read_text().strip().splitlines(), sorted(lines[1:])


@needs_mounts
@pytest.mark.parametrize("checkpoint_every", [0, 4])
def test_disk_full_during_training_is_one_line_and_leaves_no_outputs(tmp_path, checkpoint_every):
    data = dataset(tmp_path / "d.npz", n=60, d=100)
    cfg = write_config(tmp_path, data, hidden=(64,), epochs=200, checkpoint_every=checkpoint_every)
    rc, err, left = _in_mount(tmp_path, "size=256k", cfg)
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("autospec train: error: ") and "No space left on device (ENOSPC)" in err[0]
    names = {Path(p).name for p in left}
    assert not names & {p.name for p in RunDir(".").outputs}, left  # no final output
    assert not [n for n in names if n.endswith(".tmp")], left  # no temporaries
    assert names <= {"run", "checkpoint.pt", "checkpoint.parts"} | {n for n in names if n.endswith(".parquet")}


@needs_mounts
def test_unwritable_out_is_one_line(tmp_path):
    cfg = write_config(tmp_path, dataset(tmp_path / "d.npz"))
    rc, err, left = _in_mount(tmp_path, "ro,size=64k", cfg)
    assert rc == 2 and len(err) == 1 and "--out " in err[0] and "Read-only file system" in err[0]
    assert left == []


# ---------------------------------------------------------------------------------- checkpoint
class Crash(Exception):
    pass


def _crash_at(epoch):
    def cb(e):
        if e == epoch:
            raise Crash

    return cb


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda blob: blob.pop("optimizer"), "checkpoint lacks optimizer; delete it to start afresh"),
        (lambda blob: blob["model"].pop("layers.0.weight"), "does not fit this run (Error(s) in loading state_dict"),
        (lambda blob: blob["metrics"].pop("loss"), "malformed checkpoint (KeyError"),
    ],
)
def test_checkpoint_with_the_right_hash_but_missing_keys_is_one_line(tmp_path, capsys, damage, message):
    data = dataset(tmp_path / "d.npz")
    cfg_path = write_config(tmp_path, data, epochs=6, checkpoint_every=2)
    with pytest.raises(Crash):
        train(load_run_config(cfg_path), tmp_path / "out", progress=False, on_epoch=_crash_at(2))
    ckpt = RunDir(tmp_path / "out").checkpoint
    blob = torch.load(ckpt, weights_only=True)
    damage(blob)
    torch.save(blob, ckpt)
    rc, err = cli(["--config", cfg_path, "--out", tmp_path / "out"], capsys)
    assert rc == 2 and len(err) == 1 and err[0].startswith(f"autospec train: error: {ckpt}: ")
    assert message in err[0]
    assert not RunDir(tmp_path / "out").spectra.exists()


def test_a_failed_write_after_training_removes_the_outputs_already_written(tmp_path, monkeypatch):
    """The spectra are in place when model.pt fails to write: they go too (all or nothing)."""
    import errno

    from autospec.training import outputs

    def full(path, model):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(outputs, "write_model", full)
    cfg = load_run_config(write_config(tmp_path, dataset(tmp_path / "d.npz")))
    with pytest.raises(InputError, match=r"model\.pt: No space left on device \(ENOSPC\); no outputs of this run"):
        train(cfg, tmp_path / "out", progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []
