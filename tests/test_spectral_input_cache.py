"""An unchanged input is recognised without comparing values (issue 14 item 2): identity, version
counter and data pointer decide; values are compared only for a different tensor; in-place edits
and edited groups are seen; every step stays exact against the oracle."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from spectral_oracle import assert_spectra_close, oracle_grad_spectra
from torch import nn

from autospec import SpectralRecorder
from autospec.spectral import groups as groups_mod
from autospec.spectral import input_cache

N = 8
GROUPS = torch.tensor([0, 1, 0, 1, 1, 0, 2, 2])


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(40, 12), nn.Tanh(), nn.Linear(12, 3)).double()


@pytest.fixture
def compared(monkeypatch):
    """How many value comparisons the input cache made."""
    calls = []
    real = input_cache.equal_values

    def spy(x, ref):
        calls.append(x.shape)
        return real(x, ref)

    monkeypatch.setattr(input_cache, "equal_values", spy)
    return calls


def _check(model, snap, xy, groups, what):
    x, y = xy
    oracle = oracle_grad_spectra(model, lambda: F.cross_entropy(model(x), y, reduction="none"), groups)
    for (key, gid), want in oracle.items():
        assert_spectra_close(snap.singular_values(key, "grad", gid), want, f"{what} {key} {gid}")


def _steps(model, rec, inputs, y, groups=GROUPS):
    opt = torch.optim.SGD(model.parameters(), lr=0.3)
    for step, make in enumerate(inputs):
        x = make()
        opt.zero_grad()
        with rec.record(groups=groups) as snap:
            F.cross_entropy(model(x), y).backward()
        _check(model, snap, (x, y), torch.as_tensor(groups), f"step {step}")
        opt.step()


def test_the_same_tensor_is_reused_without_comparing_values(compared):
    model = _model()
    x, y = torch.randn(N, 40, dtype=torch.float64), torch.randint(0, 3, (N,))
    rec = SpectralRecorder(model)
    _steps(model, rec, [lambda: x] * 4, y)
    assert compared == []  # identity and version decided every step
    assert rec._inputs["0.weight"].factors is not None  # the cached-input route was taken


def test_an_in_place_edit_is_seen_by_the_version_counter(compared):
    model = _model()
    x, y = torch.randn(N, 40, dtype=torch.float64), torch.randint(0, 3, (N,))
    rec = SpectralRecorder(model)

    def edited():
        x.mul_(1.5)  # same object, same storage, new values
        return x

    _steps(model, rec, [lambda: x, lambda: x, edited, lambda: x, edited], y)
    assert compared == []  # the cached tensor itself changed: nothing to compare with


def test_a_view_of_the_same_base_is_the_same_input(compared):
    model = _model()
    base = torch.randn(40, N, dtype=torch.float64)
    y = torch.randint(0, 3, (N,))
    rec = SpectralRecorder(model)
    _steps(model, rec, [lambda: base.T] * 3, y)  # a new view object every step
    assert compared == [] and rec._inputs["0.weight"].factors is not None


def test_a_new_tensor_with_equal_values_is_compared_once_per_step(compared):
    model = _model()
    x, y = torch.randn(N, 40, dtype=torch.float64), torch.randint(0, 3, (N,))
    rec = SpectralRecorder(model)
    _steps(model, rec, [x.clone for _ in range(3)], y)
    assert len(compared) == 2 and rec._inputs["0.weight"].factors is not None


def test_mini_batches_are_never_reused_and_stay_exact():
    model = _model()
    data, y = torch.randn(4 * N, 40, dtype=torch.float64), torch.randint(0, 3, (N,))
    rec = SpectralRecorder(model)
    _steps(model, rec, [lambda i=i: data[i * N : (i + 1) * N] for i in range(4)], y)


def test_static_inputs_false_never_caches_and_true_builds_factors_at_once(compared):
    x, y = torch.randn(N, 40, dtype=torch.float64), torch.randint(0, 3, (N,))
    model = _model()
    never = SpectralRecorder(model, static_inputs=False)
    _steps(model, never, [lambda: x] * 2, y)
    assert never._inputs == {}
    model = _model()
    full = SpectralRecorder(model, static_inputs=True)
    with full.record(groups=GROUPS):
        F.cross_entropy(model(x), y).backward()
    assert full._inputs["0.weight"].factors is not None  # from the first step on
    _steps(model, full, [lambda: x] * 2, y)


def test_groups_edited_in_place_are_laid_out_again(monkeypatch):
    built = []
    real = groups_mod.GroupIndex.__init__

    def spy(self, groups):
        if groups is not None:
            built.append(groups.tolist())
        real(self, groups)

    monkeypatch.setattr(groups_mod.GroupIndex, "__init__", spy)
    model = _model()
    x, y = torch.randn(N, 40, dtype=torch.float64), torch.randint(0, 3, (N,))
    g = GROUPS.clone()
    rec = SpectralRecorder(model)
    _steps(model, rec, [lambda: x] * 2, y, groups=g)
    assert len(built) == 1  # the same groups tensor: laid out once
    g[0] = 2  # edited in place: its version counter moves
    _steps(model, rec, [lambda: x] * 2, y, groups=g)
    assert len(built) == 2 and built[-1] == g.tolist()
    _steps(model, rec, [lambda: x], y, groups=g.tolist())  # equal values in another form: no new layout
    assert len(built) == 2
