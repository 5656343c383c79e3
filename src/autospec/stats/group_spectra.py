"""Group spectra recomputed from per-subject gradients: label permutation and size-matched subsets.

With a loss that is a sum (or mean) over subjects, a weight's gradient is the sum of per-subject
gradients G_i, and a group's gradient is G_g = Σ_{i∈g} G_i (the recorder's group spectra, with the
loss's own 1/N). Given the G_i (``per_subject``: n × m × k, e.g. torch.func per-sample gradients),
any grouping's spectra can be recomputed, which gives two comparisons whose null distribution
does not depend on the group sizes:

- :func:`group_permutation_test`: permute the subject labels, recompute σ(G_a), σ(G_b) for each
  relabeling, and compare the observed summary difference with that permutation distribution
  (per cell, and max over cells for one global p). Relabelings keep the group sizes, so the size
  effect (σ(G_g) grows with N_g) is part of the null distribution instead of a false effect.
- :func:`matched_masks`: equal-size random subsets of each group (the size-matched resampling
  that ``recording.group_sampling: matched`` applies during training).

Values beyond a matrix's numerical rank (``σ ≤ max(m, k) · eps · σ₁``, eps of the model's dtype)
are rounding noise where G was formed; :func:`rank_zero` flags them and they are set to exact 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from numpy.typing import ArrayLike

#: summary of a batch of spectra (..., k) -> (...)
Summary = Callable[[np.ndarray], np.ndarray]


def rank_zero(values: np.ndarray, shape: tuple[int, int], eps: float = float(np.finfo(np.float32).eps)) -> np.ndarray:
    """Mask of singular values beyond the numerical rank, per spectrum on the last axis."""
    top = values.max(axis=-1, keepdims=True, initial=0.0)
    out: np.ndarray = values <= max(shape) * eps * top
    return out


def spectra(matrices: np.ndarray, eps: float = float(np.finfo(np.float32).eps)) -> np.ndarray:
    """Singular values (float64, descending) of a batch of matrices (..., m, k); rank zeros set to 0."""
    m = np.asarray(matrices, dtype=np.float64)
    sv: np.ndarray = np.linalg.svd(m, compute_uv=False)
    sv[rank_zero(sv, (m.shape[-2], m.shape[-1]), eps)] = 0.0
    return sv


def group_spectra(
    per_subject: np.ndarray, masks: ArrayLike, eps: float = float(np.finfo(np.float32).eps)
) -> np.ndarray:
    """σ(Σ_i w_ki G_i) for each row k of ``masks`` (K × n weights, e.g. 0/1) -> (K, min(m, k))."""
    G = np.asarray(per_subject, dtype=np.float64)
    n = G.shape[0]
    W = np.asarray(masks, dtype=np.float64)
    summed = (W @ G.reshape(n, -1)).reshape(W.shape[0], *G.shape[1:])
    return spectra(summed, eps)


def matched_masks(in_a: ArrayLike, rng: np.random.Generator) -> np.ndarray:
    """(2, n) 0/1 masks: a random subset of each group, both of the smaller group's size."""
    a = np.asarray(in_a, dtype=bool)
    size = int(min(a.sum(), (~a).sum()))
    out = np.zeros((2, len(a)))
    for row, members in enumerate((np.flatnonzero(a), np.flatnonzero(~a))):
        out[row, rng.choice(members, size=size, replace=False)] = 1.0
    return out


def group_permutation_test(
    per_subject: Mapping[str, np.ndarray],
    in_a: ArrayLike,
    summaries: Mapping[str, Summary],
    n_resamples: int = 199,
    rng: np.random.Generator | int | None = 0,
) -> dict[str, np.ndarray | float | list[str]]:
    """Label-permutation test of the group-spectrum summaries, spectra recomputed per relabeling.

    ``per_subject`` maps a cell name (e.g. ``"layers.0.weight@step4"``) to that cell's per-subject
    gradients (n × m × k). For each cell and summary the statistic is d = S(σ(G_a)) − S(σ(G_b));
    it is standardised by the permutation distribution's mean and SD (which absorb the group-size
    effect), z = (d − mean*) / sd*. Returns ``cells`` (``cell|summary`` names), ``d``, ``z``,
    ``p`` (per-cell two-sided permutation p of |z|) and ``p_global`` (max-|z| over every cell).
    """
    a = np.asarray(in_a, dtype=bool)
    if n_resamples < 1:
        raise ValueError(f"group_permutation_test needs at least one relabeling, got {n_resamples}")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    n = len(a)
    masks = np.vstack([a.astype(np.float64), gen.permuted(np.tile(a, (n_resamples, 1)), axis=1).astype(np.float64)])
    names: list[str] = []
    stats: list[np.ndarray] = []  # each (1 + B,)
    for cell, G in per_subject.items():
        if G.shape[0] != n:
            raise ValueError(f"{cell}: {G.shape[0]} subjects, labels for {n}")
        flat = np.asarray(G, dtype=np.float64).reshape(n, -1)
        summed_a = masks @ flat
        summed_b = flat.sum(axis=0)[None] - summed_a
        sa = spectra(summed_a.reshape(-1, *G.shape[1:]))
        sb = spectra(summed_b.reshape(-1, *G.shape[1:]))
        for sname, fn in summaries.items():
            names.append(f"{cell}|{sname}")
            stats.append(fn(sa) - fn(sb))
    D = np.array(stats).T  # (1 + B) × cells
    ok = np.isfinite(D).all(axis=0)
    null = D[1:, ok]
    mu, sd = null.mean(axis=0), null.std(axis=0)
    sd[sd == 0] = np.inf
    Z = np.abs((D[:, ok] - mu) / sd)
    z_obs, z_null = Z[0], Z[1:]
    thresh = z_obs * (1.0 - 1e-10)
    p = np.full(D.shape[1], np.nan)
    p[ok] = (1.0 + (z_null >= thresh).sum(axis=0)) / (n_resamples + 1.0)
    p_global = float("nan")
    if ok.any():
        p_global = (1.0 + float((z_null.max(axis=1) >= z_obs.max() * (1.0 - 1e-10)).sum())) / (n_resamples + 1.0)
    z = np.full(D.shape[1], np.nan)
    z[ok] = (D[0, ok] - mu) / np.where(np.isfinite(sd), sd, np.nan)
    return {"cells": names, "d": D[0], "z": z, "p": p, "p_global": p_global}
