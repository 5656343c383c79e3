"""Memory of many groups (issue 12 item 8, kept through issue 14's rework): groups are padded only
to the largest group, never to N; with N ≥ W a group keeps its raw rows while it has fewer than W
(QR-core route) and only the whole batch's gradient is formed. Exactness is checked against
float64 oracles throughout.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from spectral_oracle import assert_spectra_close, oracle_grad_spectra, svd
from torch import nn

from autospec import SpectralRecorder
from autospec.spectral import groups as groups_mod
from autospec.spectral import solve as solve_mod
from autospec.spectral.reduce import grad_mats, rows_mats
from autospec.spectral.solve import SolveSettings, solve
from autospec.spectral.work import GradWork, RowsWork


@pytest.fixture
def laid_out(monkeypatch):
    """Shapes of every group-by-group layout (gather) and every stacked SVD batch."""
    seen = {"gather": [], "svd": []}
    real_gather, real_svd = groups_mod.GroupIndex.gather, solve_mod.svdvals

    def gather(self, rows):
        out = real_gather(self, rows)
        seen["gather"].append(tuple(out.shape))
        return out

    def svdvals(m):
        seen["svd"].append(tuple(m.shape))
        return real_svd(m)

    monkeypatch.setattr(groups_mod.GroupIndex, "gather", gather)
    monkeypatch.setattr(solve_mod, "svdvals", svdvals)
    return seen


@pytest.mark.parametrize("sync", [True, False])
def test_one_group_per_sample_pads_to_the_largest_group_not_to_n(laid_out, sync):
    torch.manual_seed(0)
    n, w = 48, 96
    model = nn.Sequential(nn.Linear(w, w), nn.Tanh(), nn.Linear(w, 4)).double()
    x, y = torch.randn(n, w, dtype=torch.float64), torch.randint(0, 4, (n,))
    groups = torch.arange(n)  # per-subject groups: K = N
    rec = SpectralRecorder(model, stats=("grad", "act", "delta"), sync=sync)
    with rec.record(groups=groups) as snap:
        F.cross_entropy(model(x), y).backward()
    snap.wait()
    assert laid_out["gather"], "the group layout was not used"
    for k, rows, _ in laid_out["gather"]:
        assert (k, rows) == (n, 1)  # one row per group: padded to the largest group (1), not to N
    for b, rows, cols in laid_out["svd"]:  # batched by shape across layers and stats
        # groups: one row each; whole-batch matrices: N rows at most. Never K groups × N rows.
        assert rows == 1 or b * rows * cols <= 6 * n * w, (b, rows, cols)
    oracle = oracle_grad_spectra(model, lambda: F.cross_entropy(model(x), y, reduction="none"), groups)
    for (key, gid), want in oracle.items():
        if gid is None or gid % 7 == 0:
            assert_spectra_close(snap.singular_values(key, "grad", gid), want, f"{key} {gid}")


def _blocks(rows_per_group, width, seed):
    gen = torch.Generator().manual_seed(seed)
    k, rmax = len(rows_per_group), max(rows_per_group)
    out = torch.zeros(k, rmax, width, dtype=torch.float64)
    for g, r in enumerate(rows_per_group):
        out[g, :r] = torch.randn(r, width, generator=gen, dtype=torch.float64)
    return out


def test_n_at_least_w_with_groups_keeps_group_rows_and_forms_only_the_whole():
    n_in, n_out, k, per_group = 64, 48, 8, 32  # N = 256 ≥ W = 48, each group 32 < 48 rows
    a, d = _blocks([per_group] * k, n_in, 1), _blocks([per_group] * k, n_out, 2)
    work = GradWork("w", (n_out, n_in), 2.2e-16, list(range(k)), [per_group] * k, None, [a], [d])
    mats = grad_mats(work)
    groups = [m for m in mats if m.targets[0].group != -1]
    whole = [m for m in mats if m.targets[0].group == -1]
    assert len(groups) == 1 and groups[0].m.shape == (k, per_group, per_group)  # QR cores, no formed group
    assert len(whole) == 1 and whole[0].m.shape == (1, n_out, n_in)  # the one formed matrix
    stored = a.numel() + d.numel() + n_in * n_out
    assert stored <= k * per_group * (n_in + n_out) + n_in * n_out  # raw rows once, one formed matrix
    solved = {s.target.group: s.values for s in solve(mats, SolveSettings(None, 1e-6), {})}
    assert_spectra_close(solved[-1], svd(d.reshape(-1, n_out).T @ a.reshape(-1, n_in))[:48], "whole")
    for g in range(k):
        assert_spectra_close(solved[g][:per_group], svd(d[g].T @ a[g])[:per_group], f"group {g}")


def test_a_group_with_many_rows_switches_to_its_formed_gradient_alone():
    rows = [40, 3, 5]
    a, d = _blocks(rows, 20, 3), _blocks(rows, 16, 4)
    mats = grad_mats(GradWork("w", (16, 20), 2.2e-16, [0, 1, 2], rows, None, [a], [d]))
    shapes = {t.group: tuple(m.m.shape[1:]) for m in mats for t in m.targets}
    # group 0 (40 ≥ 16 rows) and the whole batch are formed; groups 1 and 2 are cores of their 5 rows
    assert shapes == {0: (16, 20), -1: (16, 20), 1: (5, 5), 2: (5, 5)}
    solved = {s.target.group: s.values for s in solve(mats, SolveSettings(None, 1e-6), {})}
    for g in range(3):
        r = min(16, rows[g])  # the QR route returns the r non-structural values
        assert_spectra_close(solved[g][:r], svd(d[g].T @ a[g])[:r], f"group {g}")
    assert_spectra_close(solved[-1], svd(d.reshape(-1, 16).T @ a.reshape(-1, 20)), "whole")


def test_act_spectra_of_many_small_groups_pad_to_the_largest_group():
    counts = [int(r) for r in np.random.default_rng(0).integers(1, 4, 50)]
    rows = _blocks(counts, 30, 5)
    mats = rows_mats(RowsWork("w", "act", 30, 2.2e-16, list(range(50)), counts, [rows]))
    assert mats[0].m.shape == (50, max(counts), 30)  # padded to the largest group only
    solved = {s.target.group: s.values for s in solve(mats, SolveSettings(None, 1e-6), {})}
    real = [rows[g, : counts[g]] for g in range(50)]
    assert_spectra_close(solved[-1], svd(torch.cat(real)), "whole act")
    for g in (0, 17, 49):
        assert_spectra_close(solved[g], svd(real[g]), f"act group {g}")
