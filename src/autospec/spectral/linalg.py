"""Exact singular values of A, Δ and G = AᵀΔ, by the cheapest exact route for each shape.

All routes work in float64. Two ideas keep them cheap (docs/spectral_core.md):

* A matrix given as stacked rows can be replaced by the R factor of its QR decomposition: the
  singular values are unchanged, and R is never larger than ``cols × cols``. Rows arriving in
  pieces are folded into R as they come (:func:`fold_rows`), so memory does not grow with the
  number of rows.
* σ(AᵀΔ) with few rows r < min(n_in, n_out): thin QR Aᵀ = Q_a R_a, Δᵀ = Q_d R_d gives
  σ(AᵀΔ) = σ(R_a R_dᵀ), an r × r problem, without forming the n_in × n_out matrix; it keeps small
  singular values that the Gram route (eig of AAᵀΔΔᵀ) loses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

DTYPE = torch.float64


def svdvals(m: torch.Tensor) -> torch.Tensor:
    """Singular values (descending) of a matrix or a batch of matrices, in float64.

    A matrix at least twice as wide as tall (or tall as wide) is first reduced to its square R
    factor (same σ; LAPACK's SVD of the reduced problem is several times cheaper). Non-finite
    inputs give NaN values instead of LAPACK's convergence error, so a diverging run records NaN
    rather than crashing; the caller decides whether to warn.
    """
    m = m.to(DTYPE)
    rows, cols = m.shape[-2], m.shape[-1]
    if min(rows, cols) == 0:
        return m.new_zeros(m.shape[:-2] + (0,))
    try:
        vals: torch.Tensor = torch.linalg.svdvals(_squarish(m))
        return vals
    except RuntimeError:  # LAPACK refuses non-finite input; find the finite ones
        pass
    out = m.new_full(m.shape[:-2] + (min(rows, cols),), float("nan"))
    finite = torch.isfinite(m).flatten(-2).all(-1)
    if m.dim() > 2 and bool(finite.any()):
        out[finite] = torch.linalg.svdvals(_squarish(m[finite]))
    return out


def _squarish(m: torch.Tensor) -> torch.Tensor:
    rows, cols = m.shape[-2], m.shape[-1]
    r: torch.Tensor = m
    if cols >= 2 * rows:
        r = torch.linalg.qr(m.transpose(-1, -2), mode="r")[1]
    elif rows >= 2 * cols:
        r = torch.linalg.qr(m, mode="r")[1]
    return r


def r_factor(rows: torch.Tensor) -> torch.Tensor:
    """An R with RᵀR = rowsᵀrows (so σ(R) = σ(rows)), at most ``cols × cols``.

    Returns ``rows`` itself when it is not taller than wide: then nothing is gained.
    """
    if rows.shape[-2] <= rows.shape[-1]:
        return rows
    r: torch.Tensor = torch.linalg.qr(rows, mode="r")[1]
    return r


def fold_rows(acc: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor:
    """Fold new rows into a running factor: σ(result) = σ([acc; rows])."""
    rows = rows.to(DTYPE)
    stacked = rows if acc is None else torch.cat([acc, rows], dim=-2)
    return r_factor(stacked)


def product_svdvals_qr(a_rows: torch.Tensor, d_rows: torch.Tensor) -> torch.Tensor:
    """σ(AᵀΔ) via QR cores, for a batch of row blocks ``(B, r, n_in)`` and ``(B, r, n_out)``.

    Zero rows (padding of smaller groups) contribute nothing. Returns ``(B, r)`` values; the
    remaining ``min(n_in, n_out) - r`` singular values of AᵀΔ are exactly zero.
    """
    a = a_rows.to(DTYPE).transpose(-1, -2)  # (B, n_in, r)
    d = d_rows.to(DTYPE).transpose(-1, -2)  # (B, n_out, r)
    ra = torch.linalg.qr(a, mode="r")[1]  # (B, r, r) when n_in >= r
    rd = torch.linalg.qr(d, mode="r")[1]
    return svdvals(ra @ rd.transpose(-1, -2))


def product_svd_qr(a_rows: torch.Tensor, d_rows: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
    """Top-``k`` singular triplets of G = ΔᵀA (weight layout) from row blocks ``(r, n_in)``, ``(r, n_out)``.

    Aᵀ = Q_a R_a, Δᵀ = Q_d R_d ⇒ ΔᵀA = Q_d (R_d R_aᵀ) Q_aᵀ: the SVD of the r × r core gives σ,
    and Q_d U, Q_a V the left (output-space) and right (input-space) vectors. Returns
    (σ (r,), left (k, n_out), right (k, n_in)).
    """
    qa, ra = torch.linalg.qr(a_rows.to(DTYPE).T)
    qd, rd = torch.linalg.qr(d_rows.to(DTYPE).T)
    u, s, vh = torch.linalg.svd(rd @ ra.T)
    return s, (qd @ u[:, :k]).T, (qa @ vh[:k].T).T


def svd_top(m: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
    """(σ, top-``k`` left vectors (k, rows), top-``k`` right vectors (k, cols)) of one matrix, float64."""
    u, s, vh = torch.linalg.svd(m.to(DTYPE), full_matrices=False)
    return s, u[:, :k].T, vh[:k]


def rank_cut(values: torch.Tensor, length: int, shape: tuple[int, int], eps: float) -> tuple[np.ndarray, int]:
    """Descending σ padded/cut to ``length``, with every value at or below the rank tolerance set to 0.

    Tolerance: ``max(m, n) · eps · σ₁`` (docs/spectral_core.md), ``eps`` that of the dtype the layer computed
    in. Returns (values as float64 numpy, numerical rank = number of values kept). A spectrum
    with a NaN is NaN throughout (rank 0).
    """
    v = pad_values(values.detach().to(DTYPE).cpu(), length).numpy().copy()
    if v.size == 0:
        return v, 0
    if np.isnan(v).any():
        return np.full_like(v, np.nan), 0
    tol = max(shape) * eps * float(v[0])
    beyond = v <= tol
    v[beyond] = 0.0
    return v, int((~beyond).sum())


def pad_values(values: torch.Tensor, length: int) -> torch.Tensor:
    """Zero-pad (or cut) the last axis of descending singular values to ``length``."""
    n = values.shape[-1]
    if n >= length:
        return values[..., :length]
    pad = values.new_zeros(values.shape[:-1] + (length - n,))
    return torch.cat([values, pad], dim=-1)


def stack_padded(mats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stack row blocks of equal width into ``(B, max_rows, cols)``, zero-padding the rows.

    Callers pass blocks of similar size (the groups, without the whole batch): memory is
    B · max_rows · cols.
    """
    rmax = max(m.shape[0] for m in mats)
    out = mats[0].new_zeros((len(mats), rmax, mats[0].shape[1]), dtype=DTYPE)
    for i, m in enumerate(mats):
        out[i, : m.shape[0]] = m
    return out


def numerical_rank(
    values: object, shape: tuple[int, int], atol: float = 0.0, dtype: torch.dtype = torch.float64
) -> int:
    """Number of σ above ``max(atol, σ₁ · max(m, n) · eps(dtype))`` (docs/spectral_core.md).

    Recorded spectra are already cut at this tolerance with the layer's own dtype
    (:meth:`~autospec.spectral.snapshot.Snapshot.rank` returns that rank).
    """
    v = torch.as_tensor(np.array(values, dtype=np.float64))
    if v.numel() == 0 or not bool(torch.isfinite(v).all()):
        return 0
    tol = max(atol, float(v.max()) * max(shape) * torch.finfo(dtype).eps)
    return int((v > tol).sum())


def eps_of(dtype: torch.dtype) -> float:
    """Machine epsilon for the rank tolerance of a layer that computed in ``dtype``.

    Half-precision products (autocast, bf16/fp16 weights) are accumulated in float32 by the
    recorder, so they get float32's epsilon.
    """
    if dtype == torch.float64:
        return float(torch.finfo(torch.float64).eps)
    return float(torch.finfo(torch.float32).eps)
