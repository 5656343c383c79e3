"""Recording schedules (issue 14 item 6): every k, log-spaced, an explicit list, a callable — in the
recorder and in the run config (``recording.schedule``, ``recording.every`` kept), through resume,
in both worker modes, and in figures with uneven epoch spacing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch import nn

from autospec import SpectralRecorder
from autospec.data.dataset import Dataset, save_dataset
from autospec.errors import InputError
from autospec.rundir import RunDir
from autospec.spectral.schedules import as_schedule, at, every, log_spaced
from autospec.training import load_run_config, train


def test_built_in_schedules():
    assert every(3).steps(10) == [0, 3, 6, 9]
    assert every(4, offset=2).steps(12) == [2, 6, 10]
    assert at([5, 0, 2]).steps(4) == [0, 2]
    steps = log_spaced(999, 50).steps(1000)
    assert len(steps) == 50 and steps[0] == 0 and steps[-1] == 999
    gaps = np.diff(steps)
    assert gaps[0] == 1 and gaps[-1] > 50 and np.all(np.diff(gaps) >= 0)  # dense early, sparse late
    assert log_spaced(9, 20).steps(10) == list(range(10))  # more points than steps: every step
    assert log_spaced(0, 5).steps(3) == [0]
    assert repr(every(2)) == "every(2)" and repr(at([1, 0])) == "at([0, 1])"


@pytest.mark.parametrize(
    "bad, err",
    [(0, ValueError), (2.5, TypeError), ("3", TypeError), (True, TypeError), ([-1], ValueError), ([], ValueError)],
)
def test_bad_schedules_are_refused(bad, err):
    with pytest.raises(err):
        SpectralRecorder(nn.Linear(3, 2), schedule=bad)


def test_every_and_schedule_are_exclusive_and_a_callable_must_answer_bools():
    with pytest.raises(ValueError, match="either every= or schedule="):
        SpectralRecorder(nn.Linear(3, 2), every=2, schedule=[0])
    rec = SpectralRecorder(nn.Linear(3, 2), schedule=lambda s: "yes")
    with pytest.raises(TypeError, match="True or False"), rec.record():
        pass


@pytest.mark.parametrize(
    "schedule, want",
    [(3, [0, 3, 6]), ([1, 4, 7], [1, 4, 7]), (lambda s: s in (0, 2, 8), [0, 2, 8]), (log_spaced(8, 4), [0, 1, 3, 8])],
)
def test_recorder_records_exactly_the_scheduled_steps(schedule, want):
    model = nn.Linear(4, 3)
    rec = SpectralRecorder(model, schedule=schedule)
    assert log_spaced(8, 4).steps(9) == [0, 1, 3, 8]
    got = []
    for _ in range(9):
        with rec.record() as snap:
            model(torch.randn(5, 4)).sum().backward()
        if snap.recorded:
            got.append(snap.step)
            assert snap.keys == ["weight"]
        else:
            assert snap.keys == []
    assert got == want
    assert [rec.records_at(s) for s in range(9)] == [s in want for s in range(9)]
    assert as_schedule(schedule) is not None


def test_forced_recording_ignores_the_schedule():
    model = nn.Linear(4, 3)
    rec = SpectralRecorder(model, schedule=[5])
    with rec.forced(), rec.record() as snap:
        model(torch.randn(5, 4)).sum().backward()
    assert snap.recorded and snap.step == 0


# ---------------------------------------------------------------------------------------- training runs
def _data(path, n=24, width=10):
    rng = np.random.default_rng(0)
    save_dataset(path, Dataset(
        X=rng.normal(size=(n, width)).astype(np.float32), y=np.arange(n) % 2, groups=np.arange(n) % 2,
        subject_ids=[f"s{i:02d}" for i in range(n)], class_names=["a", "b"], group_names=["g0", "g1"],
        meta={"kind": "volumes"},
    ))  # fmt: skip
    return path


def _cfg(data, recording, epochs=30, **training):
    return {
        "data": str(data),
        "model": {"family": "mlp", "hidden": [8]},
        "training": {"epochs": epochs, "lr": 0.01, "device": "cpu", "checkpoint_every": 0, **training},
        "recording": recording,
    }


def _steps(run):
    return sorted(pd.read_parquet(RunDir(run).spectra)["step"].unique().tolist())


def test_run_config_schedules(tmp_path):
    data = _data(tmp_path / "d.npz")
    runs = {
        "log": ({"schedule": {"log": 8}}, log_spaced(29, 8).steps(30)),
        "list": ({"schedule": {"epochs": [0, 2, 3, 29]}}, [0, 2, 3, 29]),
        "every": ({"schedule": {"every": 7}}, [0, 7, 14, 21, 28]),
        "old_every": ({"every": 10}, [0, 10, 20]),
    }
    for name, (rec, want) in runs.items():
        train(load_run_config(_cfg(data, rec)), tmp_path / name, progress=False)
        assert _steps(tmp_path / name) == want, name
        metrics = pd.read_csv(RunDir(tmp_path / name).metrics, sep="\t")
        assert metrics.loc[metrics["recorded"], "epoch"].tolist() == want


@pytest.mark.parametrize(
    "recording, msg",
    [
        ({"every": 2, "schedule": {"log": 4}}, "either every or schedule"),
        ({"schedule": {"epochs": [0, 30]}}, r"recording.schedule.epochs: 30 is not an epoch of this run"),
        ({"schedule": {"log": 0}}, "recording.schedule"),
        ({"schedule": {"weekly": 1}}, "recording.schedule"),
        ({"async": "yes"}, "recording.async"),
    ],
)
def test_bad_run_config_schedules_name_the_field(tmp_path, recording, msg):
    with pytest.raises(InputError, match=msg):
        load_run_config(_cfg(_data(tmp_path / "d.npz"), recording))


def test_async_and_sync_runs_write_the_same_bytes_and_resume_identically(tmp_path):
    data = _data(tmp_path / "d.npz", n=12, width=16)  # full batch, N < n_in: the cached-input route
    rec = {"schedule": {"log": 10}, "subjects": True}
    outs = {}
    for mode in (True, False):
        cfg = load_run_config(_cfg(data, {**rec, "async": mode}, epochs=40, checkpoint_every=4))
        train(cfg, tmp_path / f"async_{mode}", progress=False)
        outs[mode] = tmp_path / f"async_{mode}"
    for name in ("spectra.parquet", "subject_spectra.parquet"):
        assert (outs[True] / name).read_bytes() == (outs[False] / name).read_bytes(), name

    class Crash(Exception):
        pass

    def crash(epoch):
        if epoch == 17:
            raise Crash()

    cfg = load_run_config(_cfg(data, rec, epochs=40, checkpoint_every=4))
    with pytest.raises(Crash):
        train(cfg, tmp_path / "resumed", progress=False, on_epoch=crash)
    assert train(cfg, tmp_path / "resumed", progress=False).resumed_from == 16
    for name in ("spectra.parquet", "subject_spectra.parquet"):
        assert (outs[True] / name).read_bytes() == (tmp_path / "resumed" / name).read_bytes(), name


def test_spectra_figure_draws_uneven_epochs_at_their_values(tmp_path):
    from autospec.figures.spectra_figure import spectra_figure

    data = _data(tmp_path / "d.npz")
    cfg = _cfg(data, {"schedule": {"epochs": [0, 1, 2, 5, 13, 29]}})
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    train(load_run_config(tmp_path / "run.yaml"), tmp_path / "run", progress=False)
    side = spectra_figure({"A": tmp_path / "run"}, None, tmp_path / "fig.png", None)
    assert (tmp_path / "fig.png").stat().st_size > 0 and side.exists()
    import sys

    sf = sys.modules["autospec.figures.spectra_figure"]

    seen = []
    real = sf._heatmap

    def spy(ax, steps, idx, z, norm):
        seen.append(np.asarray(steps))
        mesh = real(ax, steps, idx, z, norm)
        xs = np.asarray(mesh.get_coordinates())[0, :, 0]  # cell edges along the epoch axis
        assert xs.min() <= 0 and xs.max() >= 29 and len(np.unique(np.round(np.diff(xs), 6))) > 1
        return mesh

    sf._heatmap = spy
    try:
        spectra_figure({"A": tmp_path / "run"}, None, tmp_path / "fig2.png", None)
    finally:
        sf._heatmap = real
    assert seen and all(s.tolist() == [0, 1, 2, 5, 13, 29] for s in seen)


def test_log_spaced_run_renders_figures(tmp_path, monkeypatch):
    """A log-spaced run (dense early, sparse late): the figure is drawn at exactly its epochs, with
    cells that widen as the spacing does."""
    import importlib

    sf = importlib.import_module("autospec.figures.spectra_figure")  # the module (the package re-exports the function)
    data = _data(tmp_path / "d.npz")
    train(load_run_config(_cfg(data, {"schedule": {"log": 8}}, epochs=60)), tmp_path / "run", progress=False)
    want = log_spaced(59, 8).steps(60)
    assert _steps(tmp_path / "run") == want and np.diff(want).max() > 4 * np.diff(want).min()
    seen, real = [], sf._heatmap

    def spy(ax, steps, idx, z, norm):
        mesh = real(ax, steps, idx, z, norm)
        seen.append((np.asarray(steps), np.asarray(mesh.get_coordinates())[0, :, 0]))
        return mesh

    monkeypatch.setattr(sf, "_heatmap", spy)
    side = sf.spectra_figure({"A": tmp_path / "run"}, None, tmp_path / "fig.png", None)
    assert (tmp_path / "fig.png").stat().st_size > 0 and side.exists()
    assert seen
    for steps, edges in seen:
        assert steps.tolist() == want
        widths = np.diff(edges)
        assert len(edges) == len(want) + 1 and widths[-1] > 4 * widths[0]  # to scale, not one column per epoch
        assert np.all((edges[:-1] <= steps) & (steps <= edges[1:]))
