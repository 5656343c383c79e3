"""Top-k spectra of wide layers by warm-started subspace iteration (issue 14 item 5): every value
within its stored a-posteriori error bound of the exact σ, warm starts converge faster, exact mode
stays the default for small layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autospec import SpectralRecorder, SpectraWriter, read_spectra
from autospec.spectral.options import WIDE
from autospec.spectral.topk import top_singular


def _matrix(m, n, decay, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.linalg.qr(torch.randn(m, min(m, n), generator=g, dtype=torch.float64))[0]
    v = torch.linalg.qr(torch.randn(n, min(m, n), generator=g, dtype=torch.float64))[0]
    s = torch.arange(1, min(m, n) + 1, dtype=torch.float64) ** (-decay)
    return (u * s) @ v.T, s


@pytest.mark.parametrize("decay", [0.5, 1.0, 2.0])
def test_values_lie_within_their_bounds_of_exact_sigma(decay):
    g, _ = _matrix(300, 120, decay)
    res = top_singular(g, 10, tol=1e-10, precision=torch.float64, max_iter=200)
    exact = torch.linalg.svdvals(g)
    assert torch.all(res.values <= exact[:10] * (1 + 1e-12))  # Ritz values never exceed σ_i
    assert torch.all((exact[:10] - res.values).abs() <= res.bounds + 1e-15), (exact[:10] - res.values, res.bounds)
    assert torch.all((exact[:10] - res.values).abs() <= 1e-9 * exact[0])  # the values converged
    # the bounds (linear in the vectors' error) are looser than the values (quadratic) but small
    assert torch.all(res.bounds <= 1e-4 * res.values[0])


def test_unconverged_bounds_stay_honest():
    """Stopped early, values are off — but never by more than their bounds say."""
    g, _ = _matrix(200, 150, 0.3, seed=1)  # slow decay: slow convergence
    res = top_singular(g, 8, tol=1e-12, precision=torch.float64, max_iter=1)
    exact = torch.linalg.svdvals(g)
    assert res.iterations == 1 and res.bounds.max() > 1e-6  # not converged, and it says so
    nearest = (exact[None, :] - res.values[:, None]).abs().min(dim=1).values
    assert torch.all(nearest <= res.bounds + 1e-15)  # a singular value lies within each bound
    assert torch.all(res.values <= exact[:8] * (1 + 1e-12))  # and no value overshoots its rank's


def test_warm_start_from_the_previous_vectors_converges_faster():
    g, _ = _matrix(400, 160, 0.7, seed=2)
    opts = {"precision": torch.float64, "max_iter": 200}
    cold = top_singular(g, 16, tol=1e-9, **opts)
    g2 = g + 1e-4 * _matrix(400, 160, 0.7, seed=3)[0]  # the next step's gradient: a small change
    warm = top_singular(g2, 16, tol=1e-9, warm=cold.right, **opts)
    again_cold = top_singular(g2, 16, tol=1e-9, **opts)
    assert warm.iterations < again_cold.iterations
    exact = torch.linalg.svdvals(g2)[:16]
    assert torch.all((exact - warm.values).abs() <= warm.bounds + 1e-15)


def _wide_model():
    return nn.Sequential(nn.Linear(48, 40), nn.Tanh(), nn.Linear(40, 3)).double()


@pytest.mark.parametrize("sync", [True, False])
def test_recorded_top_k_within_bounds_of_the_exact_recorder(sync):
    torch.manual_seed(0)
    model = _wide_model()
    # 64 rows per group ≥ min(40, 48): every gradient is formed and iterated (smaller groups would
    # take the exact QR-core route, bound 0)
    x, y = torch.randn(128, 48, dtype=torch.float64), torch.randint(0, 3, (128,))
    groups = torch.arange(128) % 2
    exact = SpectralRecorder(model, stats=("grad",), top_k=6)
    iterative = SpectralRecorder(model, stats=("grad",), top_k=6, method="iterative", tol=1e-9, sync=sync)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(3):
        opt.zero_grad()
        with exact.record(groups=groups) as ref:
            F.cross_entropy(model(x), y).backward()
        opt.zero_grad()
        with iterative.record(groups=groups) as got:
            F.cross_entropy(model(x), y).backward()
        for gid in (None, 0, 1):
            want = ref.singular_values("0.weight", group=gid)
            have = got.singular_values("0.weight", group=gid)
            bound = got.error_bound("0.weight", group=gid)
            assert np.all(np.abs(have - want) <= bound + 1e-14), (step, gid)
            assert (
                np.all(bound > 0) and np.all(bound <= 1e-5 * want[0]) and np.all(np.abs(have - want) <= 1e-9 * want[0])
            )
            assert not ref.error_bound("0.weight", group=gid).any()  # exact route: 0
        opt.step()


def test_auto_iterates_only_wide_layers(tmp_path):
    model = nn.Sequential(nn.Linear(WIDE, WIDE + 8), nn.Tanh(), nn.Linear(WIDE + 8, 4))
    x, y = torch.randn(600, WIDE), torch.randint(0, 4, (600,))
    rec = SpectralRecorder(model, stats=("grad",), top_k=4, method="auto")
    with SpectraWriter(tmp_path / "s.parquet") as w:
        with rec.record(groups=torch.arange(600) % 2) as snap:
            F.cross_entropy(model(x), y).backward()
        w.write(snap)
    df = read_spectra(tmp_path / "s.parquet")
    wide = df[df.key == "0.weight"]
    small = df[df.key == "2.weight"]
    # the whole batch (600 ≥ 512 rows) is formed and iterated; each group (300 < 512 rows) takes the
    # exact QR-core route (bound 0), as does the narrow last layer
    assert (wide[wide.group == -1]["error_bound"] > 0).all() and (wide[wide.group >= 0]["error_bound"] == 0).all()
    assert (small["error_bound"] == 0).all()
    exact = torch.linalg.svdvals(model[0].weight.grad.double())[:4].numpy()
    got = snap.singular_values("0.weight")
    # float32 layer: the recorded product is the float32 operands' exact product, .grad is rounded
    assert np.all(np.abs(got - exact) <= snap.error_bound("0.weight") + 1e-5 * exact[0])


def test_iterative_needs_top_k_and_a_valid_method():
    model = _wide_model()
    with pytest.raises(ValueError, match="give top_k"):
        SpectralRecorder(model, method="iterative")
    with pytest.raises(ValueError, match="method must be one of"):
        SpectralRecorder(model, top_k=3, method="lanczos")
    with pytest.raises(ValueError, match="tol"):
        SpectralRecorder(model, top_k=3, method="auto", tol=0)
