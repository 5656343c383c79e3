"""Memory of many groups (issue 12 item 8): groups padded only to the largest group, never to N;
with N ≥ W a group keeps its raw rows while it has fewer than W (QR-core route) and only the
whole batch's gradient is formed. Exactness is checked against float64 oracles throughout.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from spectral_oracle import assert_spectra_close, oracle_grad_spectra, svd
from torch import nn

from autospec import SpectralRecorder
from autospec.spectral import accumulators
from autospec.spectral.accumulators import GradSpectra, MatrixSpectra


@pytest.fixture
def stacked_sizes(monkeypatch):
    """Every batch that the accumulators zero-pad, as (matrices, rows, cols)."""
    seen = []
    real = accumulators.stack_padded

    def spy(mats):
        out = real(mats)
        seen.append(tuple(out.shape))
        return out

    monkeypatch.setattr(accumulators, "stack_padded", spy)
    return seen


def test_one_group_per_sample_pads_to_the_largest_group_not_to_n(stacked_sizes):
    torch.manual_seed(0)
    n, w = 48, 96
    model = nn.Sequential(nn.Linear(w, w), nn.Tanh(), nn.Linear(w, 4)).double()
    x, y = torch.randn(n, w, dtype=torch.float64), torch.randint(0, 4, (n,))
    groups = torch.arange(n)  # per-subject groups: K = N
    rec = SpectralRecorder(model, stats=("grad", "act", "delta"))
    with rec.record(groups=groups) as snap:
        F.cross_entropy(model(x), y).backward()
    assert stacked_sizes, "the batched route was not taken"
    for b, rows, cols in stacked_sizes:
        # groups: one row each, in chunks of at most 32 matrices; the whole batch alone (b == 1)
        assert (rows == 1 and b <= 32) or (b == 1 and rows == n), (b, rows, cols)
    oracle = oracle_grad_spectra(model, lambda: F.cross_entropy(model(x), y, reduction="none"), groups)
    for (key, gid), want in oracle.items():
        if gid is None or gid % 7 == 0:
            assert_spectra_close(snap.singular_values(key, "grad", gid), want, f"{key} {gid}")


def test_n_at_least_w_with_groups_keeps_group_rows_and_forms_only_the_whole():
    torch.manual_seed(1)
    n_in, n_out, k, per_group = 64, 48, 8, 32  # N = 256 ≥ W = 48, each group 32 < 48 rows
    acc = GradSpectra(k, n_in, n_out)
    a = [torch.randn(per_group, n_in, dtype=torch.float64) for _ in range(k)]
    d = [torch.randn(per_group, n_out, dtype=torch.float64) for _ in range(k)]
    for lo in range(0, per_group, 8):  # rows arrive in chunks, as from a chunked reduction
        acc.add([x[lo : lo + 8] for x in a], [x[lo : lo + 8] for x in d])
    assert all(p.formed is None for p in acc.parts) and acc.whole_formed is not None
    stored = sum(t.numel() for p in acc.parts for t in p.a + p.d) + acc.whole_formed.numel()
    n = k * per_group
    assert stored <= n * (n_in + n_out) + n_in * n_out  # raw rows once, one formed matrix
    whole, per = acc.finalize()
    assert_spectra_close(whole.values, svd(torch.cat(d).T @ torch.cat(a))[:48], "whole")
    for g in range(k):
        assert_spectra_close(per[g].values, svd(d[g].T @ a[g])[:per_group], f"group {g}")


def test_a_group_with_many_rows_switches_to_its_formed_gradient_alone():
    torch.manual_seed(2)
    acc = GradSpectra(3, 20, 16)
    a = [torch.randn(r, 20, dtype=torch.float64) for r in (40, 3, 5)]
    d = [torch.randn(r, 16, dtype=torch.float64) for r in (40, 3, 5)]
    acc.add(a, d)
    assert [p.formed is not None for p in acc.parts] == [True, False, False]
    whole, per = acc.finalize()
    for g in range(3):
        r = min(16, a[g].shape[0])  # the QR route returns the r non-structural values
        assert_spectra_close(per[g].values[:r], svd(d[g].T @ a[g])[:r], f"group {g}")
    assert_spectra_close(whole.values, svd(torch.cat(d).T @ torch.cat(a)), "whole")


def test_act_spectra_of_many_small_groups_pad_to_the_largest_group(stacked_sizes):
    torch.manual_seed(3)
    acc = MatrixSpectra(50, 30)
    rows = [torch.randn(int(r), 30, dtype=torch.float64) for r in np.random.default_rng(0).integers(1, 4, 50)]
    acc.add(rows)
    whole, per = acc.finalize()
    assert max(r for _, r, _ in stacked_sizes) == max(x.shape[0] for x in rows)
    assert_spectra_close(whole.values, svd(torch.cat(rows)), "whole act")
    for g in (0, 17, 49):
        assert_spectra_close(per[g].values, svd(rows[g]), f"act group {g}")
