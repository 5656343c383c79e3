"""Top-k singular values of a wide gradient by subspace iteration, with a-posteriori error bounds.

For a weight whose gradient is too large for a full SVD at every step (a BERT-base layer is
3072 × 768), ``SpectralRecorder(top_k=k, method="iterative" | "auto")`` finds its k largest
singular values by block subspace iteration with Rayleigh–Ritz extraction, warm-started from the
previous recorded step's right singular vectors (the gradient changes little between steps), so
one to a few iterations usually suffice. Each iteration::

    Y = G V;  U = orth(Y);  Z = Gᵀ U = Q_z R_z;  R_zᵀ = Ũ Σ Wᵀ
    σ̃ = diag Σ,  ũ = U Ũ (left),  ṽ = Q_z W (right)

with ``l = min(k + max(8, k/4), min(m, n))`` columns (oversampling speeds up convergence of the
k-th value). The iterations run in float32 (the precision the layer formed its gradient in); the
values and residuals of the result are computed in float64 on the float64 gradient.

**Error bound per value.** For each Ritz pair, normalised in float64, the value is the Rayleigh
quotient σ̃ = ũᵀ G ṽ and the residuals r₁ = ‖G ṽ − σ̃ ũ‖, r₂ = ‖Gᵀ ũ − σ̃ ṽ‖ are computed in
float64; with e = √((r₁² + r₂²)/2) plus the rounding floor ``max(m, n)·ε₆₄·σ̃₁``, the symmetric
matrix [[0, G], [Gᵀ, 0]] has an eigenvalue within e of σ̃ (the residual bound for the unit
vector (ũ; ṽ)/√2, valid for any unit vectors): **a singular value of G lies within e of σ̃**.
Iteration stops when e_i ≤ ``tol``·σ̃₁ for all i ≤ k, when the Ritz values stop moving (relative
change below 1e-9: the residual bound, linear in the vectors' error, is then pessimistic for the
values, which converge quadratically), or after :data:`MAX_ITER` iterations of a step
(:data:`MAX_ITER_COLD` from random columns); the stored bounds say how far it got, and the next
step goes on from there. The bound does not by itself prove that σ̃_i is the i-th value (a direction
missing from the start space would go unseen); the warm start plus random columns make that
unlikely, and the tests compare with exact σ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .linalg import DTYPE

MAX_ITER = 4  # per step from a warm start: it carries the convergence from step to step
MAX_ITER_COLD = 20  # from random columns (the first step, or a changed shape)
SEED = 20240611  # random start columns: the same in every run (byte-identical results)


@dataclass
class TopK:
    values: torch.Tensor  # (k,) descending
    bounds: torch.Tensor  # (k,) error bounds
    right: torch.Tensor  # (n, l) right Ritz vectors: the next step's warm start
    left: torch.Tensor  # (m, k) left vectors of the top k
    iterations: int


def _start(n: int, cols: int, warm: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    gen = torch.Generator().manual_seed(SEED)
    rand = torch.randn(n, cols, generator=gen, dtype=torch.float64)
    if warm is not None and warm.shape[0] == n:
        keep = warm[:, :cols].to(torch.float64)
        rand = torch.cat([keep, rand[:, keep.shape[1] :]], dim=1)
    q: torch.Tensor = torch.linalg.qr(rand)[0]
    return q.to(dtype)


def _ritz(g: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rayleigh–Ritz on the space G·span(V): (σ̃, left vectors, right vectors)."""
    u = torch.linalg.qr(g @ v)[0]
    qz, rz = torch.linalg.qr(g.T @ u)
    ub, s, wh = torch.linalg.svd(rz.T)
    return s, u @ ub, qz @ wh.T


def top_singular(
    g: torch.Tensor,
    k: int,
    tol: float,
    warm: torch.Tensor | None = None,
    *,
    precision: torch.dtype = torch.float32,
    max_iter: int | None = None,
) -> TopK:
    """Top-``k`` singular values of ``g`` (m × n, on the host) with error bounds; iterations in
    ``precision`` (the layer's: float64 for float64 models), at most ``max_iter`` of them
    (default :data:`MAX_ITER` from a warm start, :data:`MAX_ITER_COLD` without)."""
    g64 = g.to(DTYPE)
    m, n = g64.shape
    cols = min(k + max(8, k // 4), m, n)
    k = min(k, cols)
    warm_ok = warm is not None and warm.shape[0] == n
    limit = max_iter if max_iter is not None else MAX_ITER if warm_ok else MAX_ITER_COLD
    gw = g64 if precision == DTYPE else g64.to(precision)
    v = _start(n, cols, warm, precision)
    before = None
    it = 0
    while it < limit:
        it += 1
        s, left, v = _ritz(gw, v)
        r1 = torch.linalg.vector_norm(gw @ v[:, :k] - left[:, :k] * s[:k], dim=0)
        top = float(s[0]) if s.numel() else 0.0
        if not math.isfinite(top) or bool((r1 <= tol * top).all()):
            break
        if before is not None and bool(((s[:k] - before).abs() <= 1e-9 * top).all()):
            break
        before = s[:k].clone()
    # the result in float64: unit vectors, Rayleigh quotients and residuals
    u = left[:, :k].to(DTYPE)
    w = v[:, :k].to(DTYPE)
    u = u / torch.linalg.vector_norm(u, dim=0)
    w = w / torch.linalg.vector_norm(w, dim=0)
    gw, gu = g64 @ w, g64.T @ u
    sigma = (u * gw).sum(0)
    order = torch.argsort(sigma, descending=True)
    sigma, u, w, gw, gu = sigma[order], u[:, order], w[:, order], gw[:, order], gu[:, order]
    r1 = torch.linalg.vector_norm(gw - u * sigma, dim=0)
    r2 = torch.linalg.vector_norm(gu - w * sigma, dim=0)
    floor = max(m, n) * torch.finfo(DTYPE).eps * float(sigma.abs().max()) if k else 0.0
    bounds = torch.sqrt((r1**2 + r2**2) / 2) + floor
    return TopK(sigma.clone(), bounds, v.to(DTYPE), u, it)
