"""Recorded σ(G) whole and per group against the independent per-group-backward oracle."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from spectral_oracle import DEVICE, assert_spectra_close, oracle_grad_spectra
from torch import nn

from autospec import SpectralRecorder
from autospec import nn as autospec_nn

N = 8
GROUPS = torch.tensor([0, 1, 0, 1, 1, 0, 2, 2])


class ConvNet(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dim]
        self.c1 = conv(2, 4, 3, padding=1)
        self.c2 = conv(4, 5, 3, stride=2)
        self.c3 = conv(5, 3, 2, dilation=2, padding="same")
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        h = self.c3(torch.relu(self.c2(torch.tanh(self.c1(x)))))
        return self.fc(h.flatten(2).mean(2))


class TorchLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 6, num_layers=2, batch_first=True)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        out, (h, _) = self.lstm(x)
        return self.fc(out[:, -1] + h[-1])


class TorchRNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(3, 6, batch_first=True)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        return self.fc(self.rnn(x)[0].mean(1))


class TorchTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(11, 8)
        self.enc = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(self.enc(self.emb(x)).mean(1))


class TokenMLP(nn.Module):
    """A Linear applied per token (N, T, F): the weight is reused T times per sample."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 16)
        self.b = nn.Linear(16, 2)

    def forward(self, x):
        return self.b(torch.relu(self.a(x))).sum(1)


class OwnRecurrent(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.rnn = (autospec_nn.ElmanRNN if kind == "elman" else autospec_nn.LSTM)(3, 6, num_layers=2)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        return self.fc(self.rnn(x)[0].mean(1))


class OwnTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(3, 8)
        self.pos = autospec_nn.LearnedPositions(5, 8)
        self.enc = autospec_nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(self.enc(self.pos(self.proj(x))).mean(1))


def mlp():
    return nn.Sequential(nn.Linear(20, 16), nn.ReLU(inplace=True), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3))


CASES = {
    "mlp": (mlp, lambda: torch.randn(N, 20), "ce3"),
    "conv1d": (lambda: ConvNet(1), lambda: torch.randn(N, 2, 20), "ce2"),
    "conv2d": (lambda: ConvNet(2), lambda: torch.randn(N, 2, 9, 10), "ce2"),
    "conv3d": (lambda: ConvNet(3), lambda: torch.randn(N, 2, 8, 9, 7), "ce2"),
    "token_linear": (TokenMLP, lambda: torch.randn(N, 5, 4), "ce2"),
    "torch_lstm": (TorchLSTM, lambda: torch.randn(N, 4, 3), "ce2"),
    "torch_rnn": (TorchRNN, lambda: torch.randn(N, 4, 3), "ce2"),
    "torch_transformer": (TorchTransformer, lambda: torch.randint(0, 11, (N, 5)), "ce2"),
    "own_elman": (lambda: OwnRecurrent("elman"), lambda: torch.randn(N, 4, 3), "ce2"),
    "own_lstm": (lambda: OwnRecurrent("lstm"), lambda: torch.randn(N, 4, 3), "ce2"),
    "own_attention": (OwnTransformer, lambda: torch.randn(N, 5, 3), "ce2"),
}


def per_sample_ce(model, x, y):
    return lambda: F.cross_entropy(model(x), y, reduction="none")


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("with_groups", [True, False])
@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
def test_grad_spectra_match_oracle(name, with_groups, sync):
    torch.manual_seed(0)
    make_model, make_x, loss = CASES[name]
    model = make_model().double().to(DEVICE)
    x = make_x()
    x = (x.double() if x.is_floating_point() else x).to(DEVICE)
    y = torch.randint(0, int(loss[-1]), (N,)).to(DEVICE)
    groups = GROUPS if with_groups else None
    rec = SpectralRecorder(model, stats=("grad",), sync=sync)
    with rec.record(groups=groups) as snap:
        F.cross_entropy(model(x), y).backward()
    oracle = oracle_grad_spectra(model, per_sample_ce(model, x, y), groups)
    expected_keys = [k for k, p in model.named_parameters() if p.dim() >= 2]
    assert snap.keys == expected_keys
    for (key, gid), want in oracle.items():
        assert_spectra_close(snap.singular_values(key, "grad", gid), want, f"{name} {key} group {gid}")
    if with_groups:
        assert snap.groups == [0, 1, 2]


def test_whole_spectrum_is_that_of_the_grad():
    """With groups given, the whole-batch spectrum is σ of exactly this backward's .grad."""
    torch.manual_seed(1)
    model = mlp().double().to(DEVICE)
    x, y = torch.randn(N, 20, dtype=torch.float64).to(DEVICE), torch.randint(0, 3, (N,)).to(DEVICE)
    rec = SpectralRecorder(model, stats=("grad",))
    with rec.record(groups=GROUPS) as snap:
        F.cross_entropy(model(x), y).backward()
    grad = model[0].weight.grad
    whole = snap.singular_values("0.weight")
    assert_spectra_close(whole, torch.linalg.svdvals(grad).cpu().numpy(), "whole = .grad")


def test_float32_model_matches_float64_oracle_loosely():
    """A float32 model: recorded spectra (accumulated in float64) agree with the oracle's SVD of
    the float32 .grad to float32 accuracy."""
    torch.manual_seed(2)
    model = mlp().to(DEVICE)
    x, y = torch.randn(N, 20).to(DEVICE), torch.randint(0, 3, (N,)).to(DEVICE)
    rec = SpectralRecorder(model, stats=("grad",))
    with rec.record(groups=GROUPS) as snap:
        F.cross_entropy(model(x), y).backward()
    oracle = oracle_grad_spectra(model, per_sample_ce(model, x, y), GROUPS)
    for (key, gid), want in oracle.items():
        got = snap.singular_values(key, "grad", gid)
        assert got.dtype == "float64"
        assert abs(got[0] - want[0]) <= 1e-4 * want[0], (key, gid)


@pytest.mark.parametrize("stats", [("grad",), ("grad", "act", "delta")])
@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
def test_full_batch_training_steps_stay_exact_when_the_input_repeats(stats, sync):
    """Steps 2+ reuse the unchanged input's QR factors (σ(G) = σ(RΔ)); check every step."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(40, 12), nn.Tanh(), nn.Linear(12, 3)).double().to(DEVICE)
    x, y = torch.randn(N, 40, dtype=torch.float64).to(DEVICE), torch.randint(0, 3, (N,)).to(DEVICE)
    rec = SpectralRecorder(model, stats=stats, sync=sync)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for step in range(4):
        opt.zero_grad()
        with rec.record(groups=GROUPS) as snap:
            F.cross_entropy(model(x), y).backward()
        oracle = oracle_grad_spectra(model, per_sample_ce(model, x, y), GROUPS)
        for (key, gid), want in oracle.items():
            assert_spectra_close(snap.singular_values(key, "grad", gid), want, f"step {step} {key} group {gid}")
        opt.step()
    assert rec._inputs["0.weight"].factors is not None  # the cached route was taken
