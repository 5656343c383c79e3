"""Rank bounds every correct recorder must respect (NOTES §2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autospec import SpectralRecorder
from autospec.spectral import numerical_rank


def _rank(snap, key, stat="grad", group=None, shape=(64, 64)):
    return numerical_rank(snap.singular_values(key, stat, group), shape)


def test_rank_of_mlp_gradient_is_bounded_by_batch_and_reached():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(50, 40), nn.ReLU(), nn.Linear(40, 30), nn.ReLU(), nn.Linear(30, 20)).double()
    n = 5
    x, target = torch.randn(n, 50, dtype=torch.float64), torch.randn(n, 20, dtype=torch.float64)
    groups = torch.tensor([0, 0, 1, 1, 1])
    rec = SpectralRecorder(model)
    with rec.record(groups=groups) as snap:
        F.mse_loss(model(x), target).backward()
    for key in snap.keys:
        assert _rank(snap, key) == n, key  # N_eff = N, and generic data reach it
        assert _rank(snap, key, group=0) == 2 and _rank(snap, key, group=1) == 3, key
        assert _rank(snap, key, "act") <= n and _rank(snap, key, "delta") <= n


def test_softmax_cross_entropy_output_layer_has_rank_at_most_c_minus_1():
    torch.manual_seed(1)
    c = 6
    model = nn.Sequential(nn.Linear(30, 25), nn.ReLU(), nn.Linear(25, c)).double()
    x, y = torch.randn(40, 30, dtype=torch.float64), torch.randint(0, c, (40,))
    rec = SpectralRecorder(model)
    with rec.record() as snap:
        F.cross_entropy(model(x), y).backward()
    assert _rank(snap, "2.weight") == c - 1
    assert _rank(snap, "2.weight", "delta") == c - 1  # rows of Δ sum to zero
    assert _rank(snap, "0.weight") > c - 1  # ReLU breaks the bound below the output


def test_linear_activation_mlp_has_every_layer_rank_at_most_c_minus_1():
    torch.manual_seed(2)
    c = 4
    model = nn.Sequential(nn.Linear(30, 20), nn.Linear(20, 20), nn.Linear(20, c)).double()
    x, y = torch.randn(50, 30, dtype=torch.float64), torch.randint(0, c, (50,))
    rec = SpectralRecorder(model)
    with rec.record() as snap:
        F.cross_entropy(model(x), y).backward()
    for key in snap.keys:
        assert _rank(snap, key) == c - 1, key


def test_rnn_input_weight_reaches_rank_n_times_t():
    """nn.RNN (generic replay path): with N=3 samples and T=4 steps, W_ih is reused 12 times."""
    torch.manual_seed(3)
    rnn = nn.RNN(16, 16, batch_first=True).double()
    x = torch.randn(3, 4, 16, dtype=torch.float64)
    rec = SpectralRecorder(rnn)
    with rec.record(groups=torch.tensor([0, 1, 1])) as snap:
        out, _ = rnn(x)
        (out**2).sum().backward()
    assert _rank(snap, "weight_ih_l0") == 12
    assert _rank(snap, "weight_ih_l0", group=0) == 4 and _rank(snap, "weight_ih_l0", group=1) == 8
    assert _rank(snap, "weight_hh_l0") == 9  # h_{-1} = 0: the first step adds nothing


def test_token_linear_rank_is_n_times_t():
    torch.manual_seed(4)
    lin = nn.Linear(20, 20).double()
    x = torch.randn(3, 4, 20, dtype=torch.float64)
    rec = SpectralRecorder(lin)
    with rec.record() as snap:
        lin(x).tanh().sum().backward()
    assert _rank(snap, "weight") == 12
    assert _rank(snap, "weight", "act") == 12


def test_own_elman_rnn_with_n3_t4_reaches_rank_12():
    from autospec.nn import ElmanRNN

    torch.manual_seed(5)
    rnn = ElmanRNN(16, 16).double()
    x = torch.randn(3, 4, 16, dtype=torch.float64)
    rec = SpectralRecorder(rnn)
    with rec.record() as snap:
        (rnn(x)[0] ** 2).sum().backward()
    assert _rank(snap, "layers.0.ih.weight") == 12
    assert _rank(snap, "layers.0.ih.weight", "act") == 12
    assert _rank(snap, "layers.0.hh.weight") == 9  # h_{-1} = 0 contributes nothing


# ---------------------------------------------------------------------------------- rank_zero (issue 9 item 7)
def test_beyond_rank_noise_of_the_formed_route_is_stored_as_zero_and_flagged():
    """Output layer of a float32 softmax classifier: rank ≤ C−1; the formed route's last σ is
    rounding noise (≈1e-8·σ₁), below max(m, n)·eps(float32)·σ₁: stored as 0.0, flagged."""
    torch.manual_seed(6)
    c = 6
    model = nn.Sequential(nn.Linear(30, 25), nn.ReLU(), nn.Linear(25, c))
    x, y = torch.randn(40, 30), torch.randint(0, c, (40,))
    with SpectralRecorder(model).record(groups=torch.arange(40) % 2) as snap:
        F.cross_entropy(model(x), y).backward()
    for group in (None, 0, 1):
        v = snap.singular_values("2.weight", group=group)
        assert snap.rank("2.weight", group=group) == c - 1
        assert v[-1] == 0.0 and v[-2] > 0
        np.testing.assert_array_equal(snap.rank_zero("2.weight", group=group), np.arange(c) >= c - 1)
        # the flag uses float32's epsilon, the dtype the layer computed in
        assert numerical_rank(v, (c, 25), dtype=torch.float32) == c - 1
    raw = torch.linalg.svdvals(model[2].weight.grad.double())
    assert 0 < float(raw[-1]) < 25 * torch.finfo(torch.float32).eps * float(raw[0])  # it was noise


def test_structural_zeros_of_the_qr_route_are_flagged_and_the_frame_carries_them():
    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(20, 16), nn.Tanh(), nn.Linear(16, 10)).double()
    x, target = torch.randn(3, 20, dtype=torch.float64), torch.randn(3, 10, dtype=torch.float64)
    with SpectralRecorder(model).record() as snap:
        F.mse_loss(model(x), target).backward()
    v = snap.singular_values("0.weight")
    assert len(v) == 16 and snap.rank("0.weight") == 3 and np.all(v[3:] == 0.0)
    df = snap.to_frame()
    assert df["rank_zero"].dtype == bool
    np.testing.assert_array_equal(df["rank_zero"].to_numpy(), df["value"].to_numpy() == 0.0)
    sel = df[(df.key == "0.weight") & (df.stat == "grad")]
    assert sel["rank_zero"].tolist() == [False] * 3 + [True] * 13
    assert snap.rank("0.weight", "act") == 3  # σ(A) of 3 rows: length min(3, 20) = 3, all kept


def test_a_nan_spectrum_has_rank_zero_and_no_flags():
    model = nn.Linear(4, 3)
    x = torch.randn(5, 4)
    x[0, 0] = float("nan")
    with SpectralRecorder(model).record() as snap:
        model(x).sum().backward()
    with pytest.warns(RuntimeWarning, match="non-finite"):  # when the values are read (async mode)
        assert np.isnan(snap.singular_values("weight")).all() and snap.rank("weight") == 0
    df = snap.to_frame()
    assert df["value"].isna().any() and not df.loc[df["value"].isna(), "rank_zero"].any()
    np.testing.assert_array_equal(df["rank_zero"].to_numpy(), df["value"].to_numpy() == 0.0)
