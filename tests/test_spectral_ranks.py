"""Rank bounds every correct recorder must respect (NOTES §2)."""

from __future__ import annotations

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
