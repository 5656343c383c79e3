"""Cross-validated classifier with a permutation test on its held-out balanced accuracy.

The classifier is kernel (dual) ridge regression on standardised features with balanced target
coding (+1/n_a for group a, −1/n_b for group b within each training fold), predicting group a
when the score is positive. The folds are drawn once, independently of the labels, and every
relabeling reuses them; standardisation is fitted on each training fold (no labels involved).
Because ridge predictions are linear in the targets, all B relabelings are scored with a few
matrix products, so B = 999 costs about as much as one fit.

The statistic is the balanced accuracy of the out-of-fold predictions of all subjects (each is
predicted once, by the model that did not see it); ``p = (1 + #{score* >= score}) / (1 + B)``
over B relabelings (one-sided: better than chance). The penalty is fixed in advance (λ = mean
squared feature-vector norm of the training fold, i.e. ≈ the number of features): the test is
valid for any fixed choice; tuning it on the same data would need nested cross-validation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class CVResult:
    score: float  # balanced accuracy of the out-of-fold predictions
    null_mean: float  # mean balanced accuracy over the relabelings
    p: float
    n_perm: int
    folds: int
    n_features: int


def _usable(X: np.ndarray) -> np.ndarray:
    finite = np.isfinite(X).all(axis=0)
    out: np.ndarray = finite & (np.ptp(np.where(np.isfinite(X), X, 0.0), axis=0) > 0)
    return out


def _fold_ids(n: int, folds: int, rng: np.random.Generator) -> np.ndarray:
    ids = np.arange(n) % folds
    return rng.permutation(ids)


def _balanced_accuracy(pred_a: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Balanced accuracy per row of ``pred_a`` (B × n booleans) against ``labels`` (B × n booleans)."""
    n_a = labels.sum(axis=1)
    n_b = labels.shape[1] - n_a
    tpr_a = (pred_a & labels).sum(axis=1) / np.maximum(n_a, 1)
    tpr_b = (~pred_a & ~labels).sum(axis=1) / np.maximum(n_b, 1)
    out: np.ndarray = 0.5 * (tpr_a + tpr_b)
    return out


def cv_scores(X: np.ndarray, labels: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Out-of-fold balanced accuracy for each row of ``labels`` (B × n booleans, True = group a)."""
    B, n = labels.shape
    pred = np.zeros((B, n), dtype=bool)
    for f in np.unique(fold):
        te, tr = fold == f, fold != f
        mu, sd = X[tr].mean(axis=0), X[tr].std(axis=0)
        sd[sd == 0] = 1.0
        Xtr, Xte = (X[tr] - mu) / sd, (X[te] - mu) / sd
        K = Xtr @ Xtr.T
        lam = float(np.trace(K)) / len(Xtr)
        A = np.linalg.solve(K + lam * np.eye(len(Xtr)), np.eye(len(Xtr)))
        H = (Xte @ Xtr.T) @ A  # test scores = H @ training targets
        lab = labels[:, tr]
        n_a = lab.sum(axis=1, keepdims=True)
        n_b = lab.shape[1] - n_a
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.where(lab, 1.0 / n_a, -1.0 / n_b)
        y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)  # a fold without one group: no signal
        pred[:, te] = (y @ H.T) > 0
    return _balanced_accuracy(pred, labels)


def cv_permutation_test(
    X: ArrayLike,
    in_a: ArrayLike,
    folds: int = 5,
    n_resamples: int = 999,
    rng: np.random.Generator | int | Sequence[int] | None = 0,
) -> CVResult:
    """Held-out balanced accuracy of the ridge classifier and its permutation p-value (module doc)."""
    X = np.asarray(X, dtype=np.float64)
    a = np.asarray(in_a, dtype=bool)
    if X.ndim != 2 or a.shape != (X.shape[0],):
        raise ValueError(f"X must be (n, p) and in_a (n,), got {X.shape} and {a.shape}")
    if a.sum() < 2 or (~a).sum() < 2:
        raise ValueError(f"each group needs at least 2 subjects, got {int(a.sum())} and {int((~a).sum())}")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    keep = _usable(X)
    if not keep.any():
        return CVResult(float("nan"), float("nan"), float("nan"), 0, folds, 0)
    Xk = X[:, keep]
    n = len(a)
    fold = _fold_ids(n, min(folds, n), gen)
    observed = float(cv_scores(Xk, a[None, :], fold)[0])
    null = np.empty(n_resamples)
    step = 256
    for i in range(0, n_resamples, step):
        k = min(step, n_resamples - i)
        perms = gen.permuted(np.tile(a, (k, 1)), axis=1)
        null[i : i + k] = cv_scores(Xk, perms, fold)
    # no relabelings asked for: the score, no p-value
    p = (1.0 + float((null >= observed - 1e-12).sum())) / (n_resamples + 1.0) if n_resamples else float("nan")
    return CVResult(
        observed, float(null.mean()) if n_resamples else float("nan"), p, n_resamples, folds, int(keep.sum())
    )
