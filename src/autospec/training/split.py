"""Held-out subjects (``split:`` in the run config), stratified by group × class label.

The draw uses its own seed (``split.seed``), never the training seed, so every training seed of a
study trains on the same subjects. Strata are the (group, label) pairs in sorted order; each
stratum's members are put in a random order by one ``numpy.random.default_rng(split.seed)``.

* holdout f: ``round(f·N)`` subjects (at least 1, at most N − 1) are held out, allotted to the
  strata in proportion to their sizes (the floors of f·n_s, then one more to the strata with the
  largest remainders, ties in a random order): each stratum keeps its share of the split.
* kfold k, fold i: the strata's shuffled members are laid end to end and dealt to folds 0..k−1 in
  turn, so every fold holds ⌊n_s/k⌋ or ⌈n_s/k⌉ of each stratum; fold i is held out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InputError
from .config import SplitSettings


def _strata(groups: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Each (group, label) stratum's sample indices, in a random order, strata in sorted order."""
    keys = sorted(set(zip(groups.tolist(), labels.tolist())))
    return [rng.permutation(np.flatnonzero((groups == g) & (labels == y))) for g, y in keys]


def _holdout(strata: list[np.ndarray], fraction: float, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    n_test = min(max(round(fraction * n), 1), n - 1)
    quota = np.array([fraction * len(s) for s in strata])
    take = np.floor(quota).astype(int)
    ties = rng.permutation(len(strata))
    by_remainder = sorted(range(len(strata)), key=lambda i: (-(quota[i] - take[i]), ties[i]))
    for i in by_remainder[: n_test - int(take.sum())]:
        take[i] += 1
    return [s[:k] for s, k in zip(strata, take)]


def _kfold(strata: list[np.ndarray], k: int, fold: int) -> list[np.ndarray]:
    order = np.concatenate(strata)
    return [order[np.arange(len(order)) % k == fold]]


def held_out(
    groups: np.ndarray, labels: np.ndarray, split: SplitSettings, group_names: Sequence[str] | np.ndarray | None = None
) -> np.ndarray:
    """Boolean mask of the held-out samples (all False for ``split: none``).

    Raises InputError when the split leaves no training or no held-out sample, or a group with
    no training sample.
    """
    n = len(groups)
    if not split.held_out:
        return np.zeros(n, dtype=bool)
    if n < 2:
        raise InputError(f"run config field split: {n} sample(s) cannot be split into training and held-out sets")
    rng = np.random.default_rng(split.seed)
    strata = _strata(np.asarray(groups), np.asarray(labels), rng)
    if split.fraction is not None:
        picked = _holdout(strata, split.fraction, n, rng)
    else:
        k, fold = int(split.k or 0), int(split.fold or 0)
        if k > n:
            raise InputError(f"run config field split.kfold: {k} folds but only {n} samples")
        picked = _kfold(strata, k, fold)
    mask = np.zeros(n, dtype=bool)
    mask[np.concatenate(picked)] = True
    for g in np.unique(groups):
        if mask[groups == g].all():
            name = group_names[int(g)] if group_names is not None else int(g)
            raise InputError(
                f"run config field split: every sample of group {name!r} is held out; "
                "use a smaller fraction or fewer folds"
            )
    return mask
