"""σ(A) and σ(Δ) against oracles built from independently captured layer inputs and adjoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from spectral_oracle import assert_spectra_close, hooked_calls, svd
from torch import nn

from autospec import SpectralRecorder

N = 10
GROUPS = torch.tensor([0, 0, 1, 1, 1, 0, 1, 0, 0, 1])


def _capture(model, x, y):
    return hooked_calls(model, lambda: F.cross_entropy(model(x), y), (nn.Linear, nn.Conv2d))


def test_linear_act_and_delta_whole_and_per_group():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(30, 12), nn.ReLU(), nn.Linear(12, 4)).double()
    x, y = torch.randn(N, 30, dtype=torch.float64), torch.randint(0, 4, (N,))
    rec = SpectralRecorder(model)
    with rec.record(groups=GROUPS) as snap:
        F.cross_entropy(model(x), y).backward()
    cap = _capture(model, x, y)
    for name in ("0", "2"):
        ((a, d),) = cap[name]
        key = f"{name}.weight"
        assert_spectra_close(snap.singular_values(key, "act"), svd(a), f"{key} act")
        assert_spectra_close(snap.singular_values(key, "delta"), svd(d), f"{key} delta")
        for g in (0, 1):
            m = g == GROUPS
            assert_spectra_close(snap.singular_values(key, "act", g), svd(a[m]), f"{key} act g{g}")
            assert_spectra_close(snap.singular_values(key, "delta", g), svd(d[m]), f"{key} delta g{g}")


def test_conv2d_act_is_unfolded_input_and_delta_is_per_position():
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 2, 3, stride=2), nn.Flatten(), nn.LazyLinear(2)
    )
    model(torch.randn(1, 3, 8, 8))  # materialise the lazy layer
    model = model.double()
    x, y = torch.randn(N, 3, 8, 8, dtype=torch.float64), torch.randint(0, 2, (N,))
    rec = SpectralRecorder(model)
    with rec.record() as snap:
        F.cross_entropy(model(x), y).backward()
    cap = _capture(model, x, y)
    for name, conv in (("0", model[0]), ("2", model[2])):
        ((a, d),) = cap[name]
        cols = F.unfold(a, conv.kernel_size, padding=conv.padding, stride=conv.stride)  # (N, C·k·k, L)
        a_rows = cols.transpose(1, 2).reshape(-1, cols.shape[1])
        d_rows = d.flatten(2).transpose(1, 2).reshape(-1, d.shape[1])
        assert_spectra_close(snap.singular_values(f"{name}.weight", "act"), svd(a_rows), f"conv {name} act")
        assert_spectra_close(snap.singular_values(f"{name}.weight", "delta"), svd(d_rows), f"conv {name} delta")
        # and G = Aᵀ Δ really is the weight gradient in this row layout
        g = (d_rows.T @ a_rows).reshape(conv.weight.shape)
        assert torch.allclose(g, conv.weight.grad, atol=1e-12)


def test_weight_called_several_times_stacks_rows_of_every_call():
    torch.manual_seed(2)
    lin = nn.Linear(6, 5).double()
    x1, x2 = torch.randn(N, 6, dtype=torch.float64), torch.randn(N, 6, dtype=torch.float64)
    rec = SpectralRecorder(lin)
    with rec.record(groups=GROUPS) as snap:
        (lin(x1).sin().sum() + lin(torch.tanh(x2)).pow(2).sum()).backward()
    a = torch.cat([x1, torch.tanh(x2)])
    assert_spectra_close(snap.singular_values("weight", "act"), svd(a), "act of two calls")
    m = torch.cat([GROUPS, GROUPS]) == 1
    assert_spectra_close(snap.singular_values("weight", "act", 1), svd(a[m]), "act of two calls, group 1")
    assert_spectra_close(snap.singular_values("weight"), svd(lin.weight.grad), "grad of two calls")


def test_many_rows_are_folded_into_bounded_factors():
    """More rows than the compression threshold: the R-factor route gives the same σ."""
    torch.manual_seed(3)
    lin = nn.Linear(5, 3).double()
    x = torch.randn(400, 7, 5, dtype=torch.float64)
    groups = torch.randint(0, 3, (400,))
    rec = SpectralRecorder(lin)
    with rec.record(groups=groups) as snap:
        lin(x).pow(2).mean().backward()
    rows = x.reshape(-1, 5)
    assert_spectra_close(snap.singular_values("weight", "act"), svd(rows), "act folded")
    rows_g = x[groups == 2].reshape(-1, 5)
    assert_spectra_close(snap.singular_values("weight", "act", 2), svd(rows_g), "act folded group")
    assert_spectra_close(snap.singular_values("weight"), svd(lin.weight.grad), "grad folded")


def test_act_of_an_unchanged_input_is_reused_and_of_a_changed_input_is_not():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 2)).double()
    x = torch.randn(N, 12, dtype=torch.float64)
    y = torch.randint(0, 2, (N,))
    rec = SpectralRecorder(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    spectra = []
    for step in range(3):
        if step == 2:
            x.mul_(3.0)  # same tensor object, new values: must not hit the cache
        opt.zero_grad()
        with rec.record(groups=GROUPS) as snap:
            F.cross_entropy(model(x), y).backward()
        opt.step()
        spectra.append(snap.singular_values("0.weight", "act", 1))
    np.testing.assert_array_equal(spectra[0], spectra[1])
    assert_spectra_close(spectra[2], 3 * spectra[0], "act after in-place change")


def test_act_and_delta_are_refused_for_modules_that_hide_them():
    model = nn.LSTM(3, 4, batch_first=True)
    rec = SpectralRecorder(model)
    with rec.record() as snap:
        model(torch.randn(2, 5, 3))[0].sum().backward()
    with pytest.raises(ValueError, match=r"weight_ih_l0.*hides its inputs"):
        snap.singular_values("weight_ih_l0", "act")
    assert snap.singular_values("weight_ih_l0").shape == (3,)  # (16, 3) weight


@pytest.mark.parametrize("kind", ["elman", "lstm", "attention"])
def test_own_modules_act_and_delta_stack_every_call(kind):
    from autospec import nn as ann

    torch.manual_seed(5)
    if kind == "attention":
        body = ann.TransformerEncoderLayer(6, 2, 8, dropout=0.0)
    else:
        body = (ann.ElmanRNN if kind == "elman" else ann.LSTM)(6, 5)
    model = nn.ModuleDict({"body": body}).double()
    x = torch.randn(N, 4, 6, dtype=torch.float64)

    def run():
        out = model["body"](x)
        out = out[0] if isinstance(out, tuple) else out
        return out.pow(2).mean()

    rec = SpectralRecorder(model)
    with rec.record(groups=GROUPS) as snap:
        run().backward()
    seen = hooked_calls(model, run, nn.Linear)
    for name, calls in seen.items():
        key = f"{name}.weight"
        a = torch.cat([c[0].reshape(N, -1, c[0].shape[-1]) for c in calls], 1)
        d = torch.cat([c[1].reshape(N, -1, c[1].shape[-1]) for c in calls], 1)
        assert_spectra_close(snap.singular_values(key, "act"), svd(a.reshape(-1, a.shape[-1])), f"{key} act")
        assert_spectra_close(snap.singular_values(key, "delta"), svd(d.reshape(-1, d.shape[-1])), f"{key} delta")
        m = GROUPS == 1
        assert_spectra_close(snap.singular_values(key, "act", 1), svd(a[m].reshape(-1, a.shape[-1])), f"{key} act g1")
        assert_spectra_close(
            snap.singular_values(key, "delta", 1), svd(d[m].reshape(-1, d.shape[-1])), f"{key} delta g1"
        )
