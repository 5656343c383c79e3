"""Top-k singular values of a wide gradient by subspace iteration, with a-posteriori error bounds.

For a weight whose gradient is too large for a full SVD at every step (a BERT-base layer is
3072 × 768), ``SpectralRecorder(top_k=k, method="iterative" | "auto")`` finds its k largest
singular values by block subspace iteration with Rayleigh–Ritz extraction, warm-started from the
previous recorded step's right singular vectors (the gradient changes little between steps), so
one to a few iterations usually suffice. Each step::

    Y = G V;  U = orth(Y);  Z = Gᵀ U = Q_z R_z;  R_zᵀ = Ũ Σ Wᵀ
    σ̃ = diag Σ,  ũ = U Ũ (left),  ṽ = Q_z W (right)

with ``l = min(2k, min(m, n))`` columns (oversampling speeds up convergence of the k-th value).

**Error bound per value.** For each Ritz triplet the residuals r₁ = ‖G ṽ − σ̃ ũ‖ and
r₂ = ‖Gᵀ ũ − σ̃ ṽ‖ are computed (two more products with G at the end); with
e = √((r₁² + r₂²)/2) + the rounding floor ``max(m, n)·ε·σ̃₁``, the symmetric matrix
[[0, G], [Gᵀ, 0]] has an eigenvalue within e of σ̃ (a residual bound for the unit vector
(ũ; ṽ)/√2), i.e. **some singular value of G lies within e of σ̃**; and σ̃_i ≤ σ_i (Ritz values of
a projection never exceed the singular values of the same rank). Iteration stops once
e_i ≤ ``tol``·σ̃₁ for all i ≤ k (or after ``MAX_ITER`` iterations: the bounds then say how far it
got). The bound does not by itself prove that σ̃_i is the i-th value (a direction missing from the
start space would go unseen); the warm start plus random columns make that unlikely, and the
tests compare with exact σ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .linalg import DTYPE

MAX_ITER = 30
SEED = 20240611  # random start columns: the same in every run (byte-identical results)


@dataclass
class TopK:
    values: torch.Tensor  # (k,) descending
    bounds: torch.Tensor  # (k,) error bounds
    right: torch.Tensor  # (n, l) right Ritz vectors: the next step's warm start
    left: torch.Tensor  # (m, k) left vectors of the top k
    iterations: int


def _start(n: int, cols: int, warm: torch.Tensor | None) -> torch.Tensor:
    gen = torch.Generator().manual_seed(SEED)
    rand = torch.randn(n, cols, generator=gen, dtype=DTYPE)
    if warm is not None and warm.shape[0] == n:
        keep = warm[:, :cols].to(DTYPE)
        rand = torch.cat([keep, rand[:, keep.shape[1] :]], dim=1)
    return torch.linalg.qr(rand)[0]


def top_singular(g: torch.Tensor, k: int, tol: float, warm: torch.Tensor | None = None) -> TopK:
    """Top-``k`` singular values of ``g`` (m × n, float64 on the host) with error bounds."""
    g = g.to(DTYPE)
    m, n = g.shape
    cols = min(2 * k, m, n)
    k = min(k, cols)
    v = _start(n, cols, warm)
    y = g @ v
    floor = max(m, n) * torch.finfo(DTYPE).eps
    it = 0
    while True:
        it += 1
        u = torch.linalg.qr(y)[0]
        qz, rz = torch.linalg.qr(g.T @ u)
        ub, s, wh = torch.linalg.svd(rz.T)
        v = qz @ wh.T  # right Ritz vectors (n, cols)
        left = u @ ub  # left Ritz vectors (m, cols)
        y = g @ v  # the next iteration's start, and r₁ = ‖G ṽ − σ̃ ũ‖
        r1 = torch.linalg.vector_norm(y[:, :k] - left[:, :k] * s[:k], dim=0)
        top = float(s[0]) if s.numel() else 0.0
        if not math.isfinite(top) or it >= MAX_ITER or bool((r1 <= tol * top).all()):
            break
    r2 = torch.linalg.vector_norm(g.T @ left[:, :k] - v[:, :k] * s[:k], dim=0)
    bounds = torch.sqrt((r1**2 + r2**2) / 2) + floor * top
    return TopK(s[:k].clone(), bounds, v, left[:, :k], it)
