"""Spectra off the critical path (issue 14 item 1): the worker thread gives bit-identical spectra
files to synchronous mode, snapshots wait for their own values, errors are never lost, and the
queue is bounded (back-pressure)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from spectral_oracle import assert_spectra_close, oracle_grad_spectra
from torch import nn

from autospec import SpectralRecorder, SpectraWriter
from autospec import nn as autospec_nn
from autospec.spectral import pipeline
from autospec.spectral.store import subspaces_path
from autospec.spectral.store_sharing import sharing_path


class Mixed(nn.Module):
    """An MLP on a fixed input (cached-input route), an own LSTM (a Linear called per time step),
    a torch LSTM (generic route) and a convolution (formed route)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(40, 6)
        self.rnn = autospec_nn.LSTM(3, 5)
        self.torch_rnn = nn.LSTM(3, 4, batch_first=True)
        self.conv = nn.Conv1d(2, 3, 3)
        self.head = nn.Linear(6 + 5 + 4 + 3, 3)

    def forward(self, x, seq, sig):
        h = torch.tanh(self.fc(x))
        r = self.rnn(seq)[0][:, -1]
        t = self.torch_rnn(seq)[0][:, -1]
        c = torch.relu(self.conv(sig)).mean(2)
        return self.head(torch.cat([h, r, t, c], dim=1))


def _inputs(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, 40, generator=g),
        torch.randn(n, 4, 3, generator=g),
        torch.randn(n, 2, 9, generator=g),
        torch.randint(0, 3, (n,), generator=g),
    )


def _record(path, sync: bool, **options):
    torch.manual_seed(0)
    model = Mixed()
    x, seq, sig, y = _inputs()
    groups = torch.tensor([0, 1, 2] * 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = SpectralRecorder(model, sync=sync, **options)
    snaps = []
    with SpectraWriter(path, {"mode": "any"}) as w:
        for step in range(5):
            opt.zero_grad()
            with rec.record(groups=groups) as snap:
                F.cross_entropy(model(x, seq, sig), y).backward()
            if step % 2 == 0:  # writes lag behind some steps: the file must not care
                for s in snaps:
                    w.write(s)
                snaps = []
            snaps.append(snap)
            opt.step()
        for s in snaps:
            w.write(s)
    return model


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"subspaces": 2},
        {"sharing": True, "stats": ("grad",)},
        {"top_k": 2, "method": "iterative", "stats": ("grad",)},
        {"static_inputs": True, "every": 2},
    ],
    ids=["all-stats", "subspaces", "sharing", "iterative", "static-every2"],
)
def test_async_spectra_files_are_byte_identical_to_sync(tmp_path, options):
    one_path, two_path = tmp_path / "sync" / "spectra.parquet", tmp_path / "async" / "spectra.parquet"
    a = _record(one_path, sync=True, **options)
    b = _record(two_path, sync=False, **options)
    assert one_path.read_bytes() == two_path.read_bytes()
    expected = {subspaces_path: "subspaces" in options, sharing_path: "sharing" in options}
    for sibling, made in expected.items():
        one, two = sibling(one_path), sibling(two_path)
        assert one.exists() == two.exists() == made
        if made:
            assert one.read_bytes() == two.read_bytes()
    if "method" in options:
        bounds = pd.read_parquet(one_path)["error_bound"]
        assert (bounds > 0).any()  # iterated values carry their bounds, in both modes alike
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)  # training itself is unaffected by the mode


def test_grad_is_bit_identical_in_async_mode():
    torch.manual_seed(1)
    model = Mixed()
    twin = Mixed()
    twin.load_state_dict(model.state_dict())
    x, seq, sig, y = _inputs()
    rec = SpectralRecorder(model)  # async (the default)
    with rec.record(groups=torch.tensor([0, 1] * 6)):
        F.cross_entropy(model(x, seq, sig), y).backward()
    F.cross_entropy(twin(x, seq, sig), y).backward()
    rec.wait()
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        assert torch.equal(p.grad, q.grad), name


def test_a_snapshot_waits_for_its_own_values(monkeypatch):
    """The worker is held back; the snapshot's keys are known at once, its values after the wait."""
    gate = threading.Event()
    real = pipeline.Job.__init__

    def slow_init(self, run, *args, **kwargs):
        def held():
            gate.wait(10)
            run()

        real(self, held, *args, **kwargs)

    monkeypatch.setattr(pipeline.Job, "__init__", slow_init)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x, y = torch.randn(6, 5, dtype=torch.float64), torch.randint(0, 2, (6,))
    rec = SpectralRecorder(model, stats=("grad",))
    with rec.record(groups=torch.tensor([0, 1] * 3)) as snap:
        F.cross_entropy(model(x), y).backward()
    assert not snap.ready and snap.keys == ["0.weight", "2.weight"]
    with pytest.raises(TimeoutError):
        snap.wait(timeout=0.05)
    threading.Timer(0.05, gate.set).start()
    values = snap.singular_values("0.weight", group=1)  # blocks until the worker is done
    assert snap.ready and values.shape == (4,)
    oracle = oracle_grad_spectra(
        model, lambda: F.cross_entropy(model(x), y, reduction="none"), torch.tensor([0, 1] * 3)
    )
    assert_spectra_close(values, oracle[("0.weight", 1)], "after waiting")


def test_a_failed_job_raises_on_read_and_at_the_next_step(monkeypatch):
    from autospec.spectral import finish

    model = nn.Linear(3, 2)
    rec = SpectralRecorder(model)

    def broken(*args, **kwargs):
        raise RuntimeError("LAPACK exploded")

    monkeypatch.setattr(finish, "solve", broken)
    with rec.record() as snap:
        model(torch.randn(4, 3)).sum().backward()
    with pytest.raises(RuntimeError, match="step 0 failed: LAPACK exploded"):
        snap.singular_values("weight")
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="step 0 failed: LAPACK exploded"), rec.record():
        pass  # the error is raised even when nobody read the snapshot
    with rec.record() as ok:  # raised once; recording goes on
        model(torch.randn(4, 3)).sum().backward()
    assert ok.singular_values("weight").shape == (2,)


def test_the_queue_applies_back_pressure_under_its_memory_cap(monkeypatch):
    """With a cap below one step's work, each step waits for the previous one: never two queued."""
    seen = []
    real_submit = pipeline.PIPELINE.submit

    def watch(job):
        real_submit(job)
        seen.append(pipeline.PIPELINE.pending)

    gate_open = threading.Event()
    real_init = pipeline.Job.__init__

    def slow(self, run, *args, **kwargs):
        def held():
            gate_open.wait(0.02)
            run()

        real_init(self, held, *args, **kwargs)

    monkeypatch.setattr(pipeline.Job, "__init__", slow)
    monkeypatch.setattr(pipeline.PIPELINE, "submit", watch)
    model = nn.Linear(64, 32)
    rec = SpectralRecorder(model, queue_bytes=1)
    x = torch.randn(16, 64)
    for _ in range(4):
        with rec.record(groups=torch.arange(16) % 2):
            model(x).sum().backward()
    rec.wait()
    assert seen and all(jobs <= 1 for jobs, _ in seen), seen


def test_sync_mode_has_no_pending_work_and_warns_at_the_block():
    model = nn.Linear(4, 3)
    x = torch.randn(5, 4)
    x[0, 0] = float("nan")
    with pytest.warns(RuntimeWarning, match="non-finite"), SpectralRecorder(model, sync=True).record() as snap:
        model(x).sum().backward()
    assert snap.ready and np.isnan(snap.singular_values("weight")).all()


def test_spectra_are_computed_while_the_next_step_runs():
    """The step returns before its spectra exist: a slow job does not slow the training thread."""
    gate = threading.Event()
    model = nn.Linear(8, 4)
    rec = SpectralRecorder(model, stats=("grad",))
    real = pipeline.Job.__init__

    def held(self, run, *args, **kwargs):
        real(self, lambda: (gate.wait(5), run()), *args, **kwargs)

    pipeline.Job.__init__ = held  # type: ignore[method-assign]
    try:
        t0 = time.perf_counter()
        with rec.record() as snap:
            model(torch.randn(3, 8)).sum().backward()
        assert time.perf_counter() - t0 < 2 and not snap.ready
    finally:
        pipeline.Job.__init__ = real  # type: ignore[method-assign]
        gate.set()
    rec.wait()
    assert snap.ready
