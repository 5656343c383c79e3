"""Two-group inference on independent samples: Welch t, permutation test, Hedges' g.

Everything is vectorised over *tests*: ``Y`` is an ``(n_samples, n_tests)`` matrix whose rows are
independent units (seeds or subjects) and whose columns are the quantities tested (one per layer
and step, say). All tests share the sample labels, so one set of label permutations serves every
column — the standard way to run many permutation tests, and what keeps thousands of tests fast.

Welch's t (``scipy.stats.ttest_ind(equal_var=False)``) assumes independent samples with roughly
normal means; it does not assume equal variances. The permutation test makes no normality
assumption: it shuffles the group labels (exchangeability under the null), uses the Welch t as
its (studentised) statistic and reports the two-sided p-value
``(1 + #{|t*| >= |t_obs|}) / (1 + B)`` over B random relabelings, or the exact proportion over
all ``C(n, n_a)`` relabelings when that is at most ``n_resamples``.

Hedges' g is the bias-corrected standardised mean difference
``g = J d``, ``d = (mean_a - mean_b) / s_pooled``, ``J = 1 - 3 / (4 (n_a + n_b) - 9)``, with the
usual large-sample standard error ``SE = sqrt((n_a + n_b) / (n_a n_b) + g^2 / (2 (n_a + n_b)))``
(Hedges & Olkin 1985; Borenstein et al. 2009 instead use V_g = J² V_d with d in the
second term; the two agree to O(1/n²)) and the Wald interval
``g ± z_{1-α/2} SE``.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as _st

_CHUNK = 1 << 22  # permutations × tests per chunk of the permutation loop (32 MiB in float64)


@dataclass(frozen=True)
class HedgesG:
    g: np.ndarray
    se: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray


def hedges_g(a: ArrayLike, b: ArrayLike, confidence: float = 0.95, axis: int = 0) -> HedgesG:
    """Hedges' g of ``a`` minus ``b`` with the approximate SE and Wald CI (see module doc)."""
    a = np.moveaxis(np.asarray(a, dtype=np.float64), axis, 0)
    b = np.moveaxis(np.asarray(b, dtype=np.float64), axis, 0)
    na, nb = a.shape[0], b.shape[0]
    if na < 2 or nb < 2:
        raise ValueError(f"Hedges' g needs at least 2 samples per group, got {na} and {nb}")
    with np.errstate(invalid="ignore", divide="ignore"):
        sp = np.sqrt(((na - 1) * a.var(axis=0, ddof=1) + (nb - 1) * b.var(axis=0, ddof=1)) / (na + nb - 2))
        d = (a.mean(axis=0) - b.mean(axis=0)) / sp
        g = (1.0 - 3.0 / (4.0 * (na + nb) - 9.0)) * d
        se = np.sqrt((na + nb) / (na * nb) + g**2 / (2.0 * (na + nb)))
    z = float(_st.norm.ppf(0.5 + confidence / 2.0))
    return HedgesG(g, se, g - z * se, g + z * se)


def _constant(ya: np.ndarray, yb: np.ndarray, rtol: float = 1e-12) -> np.ndarray:
    """Columns where both groups are constant up to rounding (relative to the values' size)."""
    with np.errstate(invalid="ignore"):
        scale = np.maximum(np.nanmax(np.abs(np.vstack([ya, yb])), axis=0), np.finfo(float).tiny)
        out: np.ndarray = (np.ptp(ya, axis=0) <= rtol * scale) & (np.ptp(yb, axis=0) <= rtol * scale)
        return out


def welch_t_masks(Yc: np.ndarray, masks: np.ndarray, na: int, tot: np.ndarray, totsq: np.ndarray) -> np.ndarray:
    """Welch t for each row of ``masks`` (P × n, 1 = group a) and each column of ``Yc`` (n × m)."""
    n = Yc.shape[0]
    nb = n - na
    sa = masks @ Yc
    qa = masks @ (Yc * Yc)
    sb, qb = tot - sa, totsq - qa
    ma, mb = sa / na, sb / nb
    va = np.maximum(qa - na * ma * ma, 0.0) / (na - 1)
    vb = np.maximum(qb - nb * mb * mb, 0.0) / (nb - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        t: np.ndarray = (ma - mb) / np.sqrt(va / na + vb / nb)
        return t


def relabelings(n: int, na: int, n_resamples: int, rng: np.random.Generator) -> tuple[list[np.ndarray], bool, int]:
    """Yield (mask chunk, exact?) covering all C(n, na) splits if few enough, else random ones."""
    total = math.comb(n, na)
    exact = total <= n_resamples
    if exact:
        combos = np.array(list(itertools.combinations(range(n), na)), dtype=np.int64)
        masks = np.zeros((total, n))
        np.put_along_axis(masks, combos, 1.0, axis=1)
        return [masks], True, total
    chunks: list[np.ndarray] = []
    left = n_resamples
    step = max(1, min(n_resamples, 4096))
    while left > 0:
        k = min(step, left)
        perms = rng.permuted(np.tile(np.arange(n), (k, 1)), axis=1)[:, :na]
        masks = np.zeros((k, n))
        np.put_along_axis(masks, perms, 1.0, axis=1)
        chunks.append(masks)
        left -= k
    return chunks, False, n_resamples


def compare_two_groups(
    ya: ArrayLike,
    yb: ArrayLike,
    n_resamples: int = 9999,
    rng: np.random.Generator | int | None = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Welch t, permutation test and Hedges' g for every column of ``ya`` (n_a × m) vs ``yb`` (n_b × m).

    Columns with a non-finite value get NaN results. ``n_resamples=0`` skips the permutation test.

    Returns
    -------
    dict of 1-D arrays (length m): n_a, n_b, mean_a, mean_b, sd_a, sd_b, t, df, p_welch, p_perm,
    g, g_se, g_ci_low, g_ci_high; and scalars n_perm (relabelings used), perm_exact (bool).
    """
    ya = np.asarray(ya, dtype=np.float64)
    yb = np.asarray(yb, dtype=np.float64)
    if ya.ndim == 1:
        ya, yb = ya[:, None], yb[:, None]
    if ya.shape[1] != yb.shape[1]:
        raise ValueError(f"ya and yb must have the same number of columns, got {ya.shape} and {yb.shape}")
    na, nb, m = ya.shape[0], yb.shape[0], ya.shape[1]
    nan = np.full(m, np.nan)
    out: dict[str, Any] = {
        "n_a": np.full(m, na),
        "n_b": np.full(m, nb),
        "mean_a": nan.copy(),
        "mean_b": nan.copy(),
        "sd_a": nan.copy(),
        "sd_b": nan.copy(),
        "t": nan.copy(),
        "df": nan.copy(),
        "p_welch": nan.copy(),
        "p_perm": nan.copy(),
        "g": nan.copy(),
        "g_se": nan.copy(),
        "g_ci_low": nan.copy(),
        "g_ci_high": nan.copy(),
    }
    out["n_perm"], out["perm_exact"] = 0, False
    if na < 2 or nb < 2 or m == 0:
        return out
    ok = np.isfinite(ya).all(axis=0) & np.isfinite(yb).all(axis=0)
    for y, mean_key, sd_key in ((ya, "mean_a", "sd_a"), (yb, "mean_b", "sd_b")):
        with np.errstate(invalid="ignore"):
            out[mean_key][ok], out[sd_key][ok] = y[:, ok].mean(axis=0), y[:, ok].std(axis=0, ddof=1)
    ok &= ~_constant(ya, yb)  # no variation in either group: t is undefined, not infinite
    a, b = ya[:, ok], yb[:, ok]
    if ok.any():
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # near-constant columns: handled above
            res = _st.ttest_ind(a, b, axis=0, equal_var=False)
        out["t"][ok], out["p_welch"][ok] = res.statistic, res.pvalue
        out["df"][ok] = res.df
        hg = hedges_g(a, b, confidence)
        out["g"][ok], out["g_se"][ok], out["g_ci_low"][ok], out["g_ci_high"][ok] = hg.g, hg.se, hg.ci_low, hg.ci_high
    if n_resamples and ok.any():
        p, n_perm, exact = permutation_pvalues(np.vstack([a, b]), na, n_resamples, rng)
        out["p_perm"][ok] = p
        out["n_perm"], out["perm_exact"] = n_perm, exact
    return out


def permutation_pvalues(
    Y: ArrayLike, n_a: int, n_resamples: int = 9999, rng: np.random.Generator | int | None = 0
) -> tuple[np.ndarray, int, bool]:
    """Two-sided label-permutation p-values with the Welch t as statistic.

    ``Y`` is (n, m): the first ``n_a`` rows are group a, the rest group b. Returns
    (p-values of length m, relabelings used, exact enumeration?). Columns whose observed t is
    undefined (zero variance in both groups) get NaN.
    """
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    n, m = Y.shape
    if not 2 <= n_a <= n - 2:
        raise ValueError(f"each group needs at least 2 samples, got {n_a} and {n - n_a}")
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    # centring and scaling per column keeps the sum-of-squares form of the variance accurate
    scale = Y.std(axis=0)
    scale[scale == 0] = 1.0
    Yc = (Y - Y.mean(axis=0)) / scale
    tot, totsq = Yc.sum(axis=0), (Yc * Yc).sum(axis=0)
    observed = np.zeros((1, n))
    observed[0, :n_a] = 1.0
    t_obs = np.abs(welch_t_masks(Yc, observed, n_a, tot, totsq)[0])
    # a relabeling ties the observed statistic when equal up to rounding
    thresh = t_obs * (1.0 - 1e-10)
    chunks, exact, used = relabelings(n, n_a, int(n_resamples), rng)
    count = np.zeros(m)
    rows = max(1, _CHUNK // max(m, 1))
    for masks in chunks:
        for i in range(0, masks.shape[0], rows):
            t = np.abs(welch_t_masks(Yc, masks[i : i + rows], n_a, tot, totsq))
            count += (np.nan_to_num(t, nan=-np.inf) >= thresh).sum(axis=0)
    p = count / used if exact else (count + 1.0) / (used + 1.0)
    p[~np.isfinite(t_obs)] = np.nan
    return np.minimum(p, 1.0), used, exact
