"""Issue 12's "Why" cases, each against the float64 oracle: exact, or a clear exception.

Tied weights, sample coupling (module, functional, loss), sequence-first inputs with T == N,
packed sequences, targets that change after construction, sparse gradients.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from spectral_oracle import assert_spectra_close, oracle_grad_spectra
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from autospec import SpectralRecorder
from autospec.spectral import CheckFailed

N = 8
GROUPS = torch.tensor([0, 1, 0, 1, 1, 0, 2, 2])


def recorded_vs_oracle(model, per_sample_loss, groups, **options):
    """Record one step (mean of the per-sample losses) and compare every key and group to the oracle."""
    rec = SpectralRecorder(model, stats=("grad",), **options)
    with rec.record(groups=groups) as snap:
        per_sample_loss().mean().backward()
    oracle = oracle_grad_spectra(model, per_sample_loss, groups)
    assert snap.keys == [k for k, p in model.named_parameters() if p.dim() >= 2 and p.requires_grad]
    for (key, gid), want in oracle.items():
        assert_spectra_close(snap.singular_values(key, "grad", gid), want, f"{key} group {gid}")
    return snap


# ---------------------------------------------------------------------------------- tied weights
class TiedLM(nn.Module):
    """Embedding and decoder share one matrix (generic route + adapter route)."""

    def __init__(self, functional: bool = False):
        super().__init__()
        self.functional = functional
        self.emb = nn.Embedding(11, 6)
        self.mid = nn.Linear(6, 6)
        self.dec = nn.Linear(6, 11, bias=False)
        self.dec.weight = self.emb.weight

    def forward(self, x):
        h = torch.tanh(self.mid(self.emb(x)))
        logits = F.linear(h, self.emb.weight) if self.functional else self.dec(h)
        return logits.mean(1)


class TwiceTied(nn.Module):
    """Two Linear layers sharing one weight (adapter + adapter)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(7, 7)
        self.b = nn.Linear(7, 7)
        self.b.weight = self.a.weight
        self.out = nn.Linear(7, 3)

    def forward(self, x):
        return self.out(torch.tanh(self.b(torch.relu(self.a(x)))))


@pytest.mark.parametrize("with_groups", [True, False])
def test_tied_embedding_and_decoder_are_one_key_with_both_contributions(with_groups):
    torch.manual_seed(0)
    model = TiedLM().double()
    x, y = torch.randint(0, 11, (N, 5)), torch.randint(0, 11, (N,))
    snap = recorded_vs_oracle(
        model, lambda: F.cross_entropy(model(x), y, reduction="none"), GROUPS if with_groups else None
    )
    assert snap.keys == ["emb.weight", "mid.weight"]  # no 'dec.weight': named_parameters() lists it once


@pytest.mark.parametrize("with_groups", [True, False])
def test_two_linears_sharing_a_weight_sum_both_uses(with_groups):
    torch.manual_seed(1)
    model = TwiceTied().double()
    x, y = torch.randn(N, 7, dtype=torch.float64), torch.randint(0, 3, (N,))
    recorded_vs_oracle(model, lambda: F.cross_entropy(model(x), y, reduction="none"), GROUPS if with_groups else None)


@pytest.mark.parametrize("with_groups", [True, False])
def test_a_weight_used_functionally_outside_its_module_is_refused(with_groups):
    torch.manual_seed(2)
    model = TiedLM(functional=True)
    x, y = torch.randint(0, 11, (N, 5)), torch.randint(0, 11, (N,))
    rec = SpectralRecorder(model)
    with (
        pytest.raises(CheckFailed, match=r"'emb.weight' is used by MmBackward0 outside the modules"),
        rec.record(groups=GROUPS if with_groups else None),
    ):
        F.cross_entropy(model(x), y).backward()
    assert model.emb.weight.grad is None  # refused before the backward ran


def test_a_penalty_on_a_weight_in_the_loss_is_refused():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2))
    x, y = torch.randn(N, 5), torch.randint(0, 2, (N,))
    rec = SpectralRecorder(model)
    with (
        pytest.raises(CheckFailed, match=r"'0.weight' is used by .* a penalty on the weight in the loss"),
        rec.record(),
    ):
        (F.cross_entropy(model(x), y) + 1e-3 * model[0].weight.pow(2).sum()).backward()


# ---------------------------------------------------------------------------------- coupling
class Centred(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(5, 6)
        self.b = nn.Linear(6, 3)

    def forward(self, x):
        h = torch.tanh(self.a(x))
        return self.b(h - h.mean(0))  # a functional batch reduction, no module to recognise


def _bn(track: bool):
    return nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6, track_running_stats=track), nn.Linear(6, 3))


def _infonce(model, x):
    z = F.normalize(model(x), dim=1)
    return F.cross_entropy(z @ z.T / 0.1, torch.arange(x.shape[0]), reduction="none")


COUPLED = {
    "batchnorm_training": (lambda: _bn(True).train(), "between the output of '0' \\(Linear\\) and the output of '1'"),
    "batchnorm_eval_no_running_stats": (lambda: _bn(False).eval(), "'1' \\(BatchNorm1d\\)"),
    "functional_centring": (Centred, "between the output of 'a' \\(Linear\\) and the output of 'b'"),
}


@pytest.mark.parametrize("case", list(COUPLED))
def test_a_forward_that_couples_samples_refuses_groups(case):
    torch.manual_seed(4)
    make, where = COUPLED[case]
    model = make().double()
    x, y = torch.randn(N, 5, dtype=torch.float64), torch.randint(0, 3, (N,))
    rec = SpectralRecorder(model)
    with (
        pytest.raises(CheckFailed, match=f"the forward couples samples.*{where}.*assume_independent=True"),
        rec.record(groups=GROUPS),
    ):
        F.cross_entropy(model(x), y).backward()
    # without groups the whole-batch spectrum is defined and exact
    recorded_vs_oracle(model, lambda: F.cross_entropy(model(x), y, reduction="none"), None)


def test_a_loss_that_couples_samples_refuses_groups():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 4)).double()
    x = torch.randn(N, 5, dtype=torch.float64)
    with (
        pytest.raises(CheckFailed, match=r"the loss couples samples.*InfoNCE"),
        SpectralRecorder(model).record(groups=GROUPS),
    ):
        _infonce(model, x).mean().backward()
    recorded_vs_oracle(model, lambda: _infonce(model, x), None)


def test_assume_independent_skips_the_probes():
    model = _bn(True).double()
    x, y = torch.randn(N, 5, dtype=torch.float64), torch.randint(0, 3, (N,))
    rec = SpectralRecorder(model, assume_independent=True)
    with rec.record(groups=GROUPS) as snap:
        F.cross_entropy(model(x), y).backward()
    assert snap.groups == [0, 1, 2]


def test_batchnorm_in_eval_mode_with_running_stats_is_exact_per_group():
    torch.manual_seed(6)
    model = _bn(True).double()
    model(torch.randn(32, 5, dtype=torch.float64))  # some running statistics
    model.eval()
    x, y = torch.randn(N, 5, dtype=torch.float64), torch.randint(0, 3, (N,))
    recorded_vs_oracle(model, lambda: F.cross_entropy(model(x), y, reduction="none"), GROUPS)


def test_probe_runs_again_when_a_module_changes_mode():
    model = _bn(True).double().eval()
    x, y = torch.randn(N, 5, dtype=torch.float64), torch.randint(0, 3, (N,))
    rec = SpectralRecorder(model)
    with rec.record(groups=GROUPS):
        F.cross_entropy(model(x), y).backward()
    model.train()  # now BatchNorm uses batch statistics
    with pytest.raises(CheckFailed, match="couples samples"), rec.record(groups=GROUPS):
        F.cross_entropy(model(x), y).backward()


# ---------------------------------------------------------------------------------- sample axis
class SeqFirst(nn.Module):
    """nn.LSTM(batch_first=False) then a token-wise Linear on (T, N, H): sequence first."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 5)
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        return self.fc(self.lstm(x)[0]).mean(0)


def test_sequence_first_with_t_equal_n_is_refused_by_default_and_exact_with_batch_dim():
    torch.manual_seed(7)
    model = SeqFirst().double()
    x, y = torch.randn(N, N, 3, dtype=torch.float64), torch.randint(0, 2, (N,))  # T == N
    with (
        pytest.raises(CheckFailed, match=r"'fc' \(Linear\): its output keeps samples on dim 1.*batch_dim=\{'fc': 1\}"),
        SpectralRecorder(model).record(groups=GROUPS),
    ):
        F.cross_entropy(model(x), y).backward()
    recorded_vs_oracle(model, lambda: F.cross_entropy(model(x), y, reduction="none"), GROUPS, batch_dim={"fc": 1})


def test_a_conv_given_another_sample_axis_is_refused_at_construction():
    model = nn.Sequential(nn.Conv1d(2, 3, 3), nn.Flatten(), nn.Linear(3 * 6, 2))
    with pytest.raises(ValueError, match=r"'0' .*Conv1d.* takes samples on dim 0"):
        SpectralRecorder(model, batch_dim=1)
    with pytest.raises(ValueError, match="batch_dim names module 'nope'"):
        SpectralRecorder(model, batch_dim={"nope": 1})


# ---------------------------------------------------------------------------------- packed sequences
class Packed(nn.Module):
    def __init__(self, use_output: bool):
        super().__init__()
        self.use_output = use_output
        self.lstm = nn.LSTM(3, 4, batch_first=True)
        self.fc = nn.Linear(4, 2)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, (h, _) = self.lstm(packed)
        if self.use_output:
            return self.fc(pad_packed_sequence(out, batch_first=True)[0].sum(1))
        return self.fc(h[-1])


@pytest.mark.parametrize("use_output", [False, True])
def test_packed_sequences_are_exact_per_group(use_output):
    torch.manual_seed(8)
    model = Packed(use_output).double()
    x, lengths = torch.randn(N, 6, 3, dtype=torch.float64), torch.tensor([6, 2, 4, 5, 3, 1, 6, 2])
    y = torch.randint(0, 2, (N,))
    recorded_vs_oracle(model, lambda: F.cross_entropy(model(x, lengths), y, reduction="none"), GROUPS)


# ---------------------------------------------------------------------------------- targets, sparse
def test_targets_follow_requires_grad_changes_after_construction():
    torch.manual_seed(9)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x, y = torch.randn(N, 5, dtype=torch.float64), torch.randint(0, 2, (N,))
    rec = SpectralRecorder(model)
    model[0].weight.requires_grad_(False)
    assert rec.keys == ["2.weight"]
    snap = recorded_vs_oracle(model, lambda: F.cross_entropy(model(x), y, reduction="none"), GROUPS)
    assert snap.keys == ["2.weight"]
    model[0].weight.requires_grad_(True)
    model.zero_grad()
    with rec.record(groups=GROUPS) as snap:
        F.cross_entropy(model(x), y).backward()
    assert snap.keys == ["0.weight", "2.weight"]


def test_sparse_gradients_are_refused_at_construction():
    model = nn.Sequential(nn.Embedding(10, 4, sparse=True), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"'0.weight' \(0\): it produces sparse gradients"):
        SpectralRecorder(model)
    assert SpectralRecorder(model, include="1").keys == ["1.weight"]
