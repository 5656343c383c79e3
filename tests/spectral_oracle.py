"""Independent oracles for recorded spectra (NOTES §2): nothing here uses autospec's code paths.

Per group g the oracle runs one plain backward of Σ_{i∈g} ℓ_i / N and takes the float64 SVD of
each weight's ``.grad``; the whole batch is the plain backward of the mean loss.
"""

from __future__ import annotations

import os

import numpy as np
import torch

#: where the oracle tests run: ``AUTOSPEC_TEST_DEVICE=cuda`` (benchmarks/gpu_check.sh) moves their
#: models and inputs to the GPU; the oracles then run there too and are read back to the host
DEVICE = torch.device(os.environ.get("AUTOSPEC_TEST_DEVICE", "cpu"))

REL_TOL = 1e-5
FLOOR = 1e-6  # compare σ ≥ FLOOR · σ₁


def oracle_grad_spectra(model, per_sample_loss, groups):
    """{(key, group or None): σ}: per-group backward of Σ_{i∈g} ℓ_i / N, SVD of .grad."""
    out = {}
    ids = [None] + ([] if groups is None else sorted(set(groups.tolist())))
    for gid in ids:
        model.zero_grad(set_to_none=True)
        losses = per_sample_loss()
        n = losses.shape[0]
        g = None if groups is None else groups.to(losses.device)
        mask = torch.ones(n, dtype=losses.dtype, device=losses.device) if gid is None else (g == gid).to(losses.dtype)
        ((losses * mask).sum() / n).backward()
        for key, p in model.named_parameters():
            if p.dim() >= 2 and p.grad is not None:
                grad = p.grad.detach().reshape(p.shape[0], -1).to(torch.float64).cpu().numpy()
                out[(key, gid)] = np.linalg.svd(grad, compute_uv=False)
    model.zero_grad(set_to_none=True)
    return out


def assert_spectra_close(got, want, what=""):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: {got.shape} vs {want.shape}"
    if want.size == 0 or want[0] == 0:
        assert np.allclose(got, want, atol=1e-12), what
        return
    keep = want >= FLOOR * want[0]
    rel = np.abs(got[keep] - want[keep]) / want[keep]
    assert rel.max() <= REL_TOL, f"{what}: max relative error {rel.max():.3g}"
    # values below the floor must stay below it (no spurious large values)
    assert np.all(got[~keep] <= FLOOR * want[0] * 10), f"{what}: small values not small"


def svd(m) -> np.ndarray:
    m = m.detach().to(torch.float64).cpu().numpy() if isinstance(m, torch.Tensor) else np.asarray(m, dtype=np.float64)
    return np.linalg.svd(m, compute_uv=False)


def hooked_calls(model, run, types):
    """{module name: [(input, output adjoint), ...]} of every call of the given layer types,
    captured with retain_grad (layers must not be followed by in-place ops)."""
    seen = {}

    def hook(name):
        def f(mod, args, out):
            out.retain_grad()
            seen.setdefault(name, []).append((args[0].detach(), out))

        return f

    hs = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if isinstance(m, types)]
    model.zero_grad()
    run().backward()
    for h in hs:
        h.remove()
    return {n: [(a, o.grad.detach()) for a, o in calls] for n, calls in seen.items()}
