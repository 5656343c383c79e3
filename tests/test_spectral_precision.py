"""Mixed precision (autocast) and trace-free replay.

Under autocast a layer multiplies half-precision operands; the recorder uses exactly those
operands (A cast as the layer cast it, Δ as autograd delivered it) and multiplies them in float32
or float64, so its σ are those of the exact product of the layer's own operands. ``.grad`` is the
same product rounded to half precision, so σ(.grad) differs by up to its rounding: checked below.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from spectral_oracle import assert_spectra_close, oracle_grad_spectra, svd
from torch import nn

from autospec import SpectralRecorder

N = 6
GROUPS = torch.tensor([0, 1, 0, 1, 1, 0])
HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.lstm = nn.LSTM(4, 5, batch_first=True)
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        h = torch.relu(self.conv(x)).flatten(2).transpose(1, 2)  # (N, positions, 4)
        return self.fc(self.lstm(h)[0][:, -1])


def _operands(model, run):
    """(A cast to the layer's compute dtype, Δ) of every call of conv/fc, captured independently."""
    seen = {}

    def hook(name):
        def f(mod, args, out):
            out.retain_grad()
            seen[name] = (args[0].detach().to(out.dtype), out)

        return f

    hs = [model.conv.register_forward_hook(hook("conv")), model.fc.register_forward_hook(hook("fc"))]
    model.zero_grad()
    run().backward()
    for h in hs:
        h.remove()
    return {k: (a, o.grad.detach()) for k, (a, o) in seen.items()}


def _close_to_float32(got, want, what):
    """Products of half-precision operands accumulated in float32: |Δσ| ≤ 1e-6 · σ₁."""
    want = want[: len(got)]
    assert np.max(np.abs(got - want)) <= 1e-6 * want[0], what
    assert np.all(got[want < 1e-6 * want[0]] <= 1e-5 * want[0]), what


@pytest.mark.parametrize("half", list(HALF))
def test_autocast_linear_conv_lstm_record_the_layers_own_product(half):
    torch.manual_seed(0)
    model = Mixed()
    x, y = torch.randn(N, 3, 6, 6), torch.randint(0, 3, (N,))

    def run():
        with torch.autocast("cpu", dtype=HALF[half]):
            return F.cross_entropy(model(x).float(), y)

    rec = SpectralRecorder(model, stats=("grad",))
    with rec.record(groups=GROUPS) as snap:
        run().backward()  # used to raise in convolution_backward (float32 input, half adjoint)
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    ops = _operands(model, run)
    for name, (a, d) in ops.items():
        if name == "conv":
            a = F.unfold(a.double(), 3).transpose(1, 2).reshape(-1, 27)
            d = d.double().flatten(2).transpose(1, 2).reshape(-1, 4)
        exact = d.double().reshape(-1, d.shape[-1]).T @ a.double().reshape(-1, a.shape[-1])
        _close_to_float32(snap.singular_values(f"{name}.weight"), svd(exact), f"{half} {name}: exact product")
        for g in (0, 1):
            m = (g == GROUPS).repeat_interleave(a.shape[0] // N)
            part = d.double().reshape(-1, d.shape[-1])[m].T @ a.double().reshape(-1, a.shape[-1])[m]
            _close_to_float32(snap.singular_values(f"{name}.weight", group=g), svd(part), f"{half} {name} g{g}")
    eps = torch.finfo(HALF[half]).eps
    for key, g in grads.items():
        if g.dim() < 2:
            continue
        g2 = g.reshape(g.shape[0], -1)
        got, want = snap.singular_values(key), svd(g2)[: len(snap.singular_values(key))]
        # .grad is the product rounded to half precision: |Δσ| ≤ ‖rounding‖₂ ≤ eps · ‖G‖_F
        assert np.max(np.abs(got - want)) <= eps * float(g2.double().norm()), key


def test_autocast_lstm_groups_match_the_autocast_oracle():
    torch.manual_seed(1)
    model = Mixed()
    x, y = torch.randn(N, 3, 6, 6), torch.randint(0, 3, (N,))

    def losses():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return F.cross_entropy(model(x).float(), y, reduction="none")

    rec = SpectralRecorder(model, stats=("grad",))
    with rec.record(groups=GROUPS) as snap:
        losses().mean().backward()
    oracle = oracle_grad_spectra(model, losses, GROUPS)
    for (key, gid), want in oracle.items():
        if key.startswith("lstm"):
            got = snap.singular_values(key, "grad", gid)
            # both are backward passes in bf16 (the replay re-enters the same autocast): equal to bf16 rounding
            assert np.max(np.abs(got - want[: len(got)])) <= 2e-2 * want[0], (key, gid)


# ---------------------------------------------------------------------------------- replay leaves no trace
class RootParam(nn.Module):
    """A parameter used directly in the root's forward: the whole model is the generic module."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(5, 6)
        self.bn = nn.BatchNorm1d(6)
        self.drop = nn.Dropout(0.3)
        self.W = nn.Parameter(torch.randn(6, 3))

    def forward(self, x):
        return self.drop(self.bn(self.fc(x))) @ self.W


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_replay_leaves_buffers_rng_and_grad_bit_identical(mode):
    torch.manual_seed(2)
    a = RootParam()
    a.bn(torch.randn(16, 6))  # running statistics that are not the defaults
    a.train(mode == "train")
    a.drop.train()  # dropout draws random numbers in both cases
    b = copy.deepcopy(a)
    x, y = torch.randn(N, 5), torch.randint(0, 3, (N,))
    rec = SpectralRecorder(a)
    groups = None if mode == "train" else GROUPS  # batch statistics in training mode couple samples
    torch.manual_seed(3)
    with rec.record(groups=groups) as snap:
        F.cross_entropy(a(x), y).backward()
    after_recorded = torch.random.get_rng_state()
    torch.manual_seed(3)
    F.cross_entropy(b(x), y).backward()
    assert torch.equal(after_recorded, torch.random.get_rng_state())
    for (name, p), (_, q) in zip(a.named_buffers(), b.named_buffers()):
        assert torch.equal(p, q), name  # running_mean, running_var, num_batches_tracked
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p.grad, q.grad), name
    assert_spectra_close(snap.singular_values("W"), svd(b.W.grad), "root parameter")
