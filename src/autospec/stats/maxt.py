"""Max-statistic permutation test over many quantities: FWER over layers × epochs × summaries.

``Y`` (n subjects × m quantities) holds one row per independent unit. The statistic of column j
is a t: Welch's t without covariates, the OLS t of the group coefficient with them. The group
labels are permuted (B random relabelings, or all of them when there are at most B); for each
relabeling the largest |t| over all columns is kept. Then (Westfall & Young 1993, single step):

- ``p_fwer[j] = (1 + #{b: max_k |t*_bk| >= |t_j|}) / (B + 1)``: adjusted p-values that control the
  family-wise error rate over all m columns at once, whatever their dependence;
- ``p_global = min_j p_fwer[j]``: one p-value for "the groups differ anywhere", the test whose
  false-positive rate the calibration measures (one decision per data set);
- ``p_unadjusted[j]``: the ordinary per-column permutation p-value.

With covariates the permutation follows Freedman & Lane (1983): the quantities are regressed on
the covariates alone (reduced model), the residuals are permuted and added back to the fitted
values, and the full model (intercept, group, covariates) is refitted. The computation below
uses the identity t* = uᵀR_π / sqrt((‖R‖² − ‖Q_Zᵀ R_π‖² − (uᵀR_π)²) / (n − p)), with R the
reduced-model residuals, Q_Z an orthonormal basis of the covariates, u the unit vector of the
group indicator orthogonalised against them and p the number of design columns; it equals the
OLS t of the refitted full model (tests/test_stats_inference.py checks it against plain
least squares). Exchangeability of subjects under the null is the only assumption.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .covariates import full_design
from .inference import relabelings, welch_t_masks

_CHUNK = 1 << 22  # relabelings × columns per chunk
#: t, diff, df, per-column counts, max-statistic counts, relabelings used, exact enumeration?
_Raw = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, bool]


@dataclass(frozen=True)
class MaxTResult:
    """Result of :func:`maxt_test`; arrays have one entry per column of ``Y`` (NaN: not tested)."""

    t: np.ndarray
    diff: np.ndarray
    df: np.ndarray
    p_unadjusted: np.ndarray
    p_fwer: np.ndarray
    p_global: float
    n_perm: int
    exact: bool
    statistic: str


def _valid_columns(Y: np.ndarray) -> np.ndarray:
    finite = np.isfinite(Y).all(axis=0)
    with np.errstate(invalid="ignore"):
        scale = np.maximum(np.nanmax(np.abs(Y), axis=0), np.finfo(float).tiny)
        varying = np.ptp(np.where(np.isfinite(Y), Y, 0.0), axis=0) > 1e-12 * scale
    out: np.ndarray = finite & varying
    return out


def _count(obs: np.ndarray, perm_abs: np.ndarray, cnt: np.ndarray, cnt_max: np.ndarray) -> None:
    """Add one chunk of permuted |t| (P × m) to the per-column and max-statistic counts."""
    thresh = obs * (1.0 - 1e-10)  # a relabeling ties the observed statistic when equal up to rounding
    perm_abs = np.nan_to_num(perm_abs, nan=-np.inf)
    cnt += (perm_abs >= thresh).sum(axis=0)
    mx = perm_abs.max(axis=1)
    cnt_max += (mx[:, None] >= thresh[None, :]).sum(axis=0)


def _welch(Y: np.ndarray, in_a: np.ndarray, n_resamples: int, rng: np.random.Generator) -> _Raw:
    n, m = Y.shape
    order = np.r_[np.flatnonzero(in_a), np.flatnonzero(~in_a)]
    Yo = Y[order]
    na = int(in_a.sum())
    scale = Yo.std(axis=0)
    scale[scale == 0] = 1.0
    Yc = (Yo - Yo.mean(axis=0)) / scale
    tot, totsq = Yc.sum(axis=0), (Yc * Yc).sum(axis=0)
    observed = np.zeros((1, n))
    observed[0, :na] = 1.0
    t = welch_t_masks(Yc, observed, na, tot, totsq)[0]
    a, b = Yo[:na], Yo[na:]
    va, vb = a.var(axis=0, ddof=1) / na, b.var(axis=0, ddof=1) / (n - na)
    with np.errstate(invalid="ignore", divide="ignore"):
        df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (n - na - 1))
    diff = a.mean(axis=0) - b.mean(axis=0)
    obs = np.abs(t)
    cnt, cnt_max = np.zeros(m), np.zeros(m)
    chunks, exact, used = relabelings(n, na, n_resamples, rng)
    rows = max(1, _CHUNK // max(m, 1))
    for masks in chunks:
        for i in range(0, masks.shape[0], rows):
            _count(obs, np.abs(welch_t_masks(Yc, masks[i : i + rows], na, tot, totsq)), cnt, cnt_max)
    return t, diff, df, cnt, cnt_max, used, exact


def _freedman_lane(
    Y: np.ndarray, in_a: np.ndarray, nuisance: np.ndarray, n_resamples: int, rng: np.random.Generator
) -> _Raw:
    n, m = Y.shape
    X = full_design(in_a.astype(np.float64), nuisance)
    Z = np.delete(X, 1, axis=1)
    Qz, _ = np.linalg.qr(Z)
    R = Y - Qz @ (Qz.T @ Y)
    g = X[:, 1] - Qz @ (Qz.T @ X[:, 1])
    g_norm = float(np.linalg.norm(g))
    u = g / g_norm
    dof = n - X.shape[1]
    ss = (R * R).sum(axis=0)
    V = np.column_stack([u, Qz])  # permuted together: row i of V goes to row π_i

    def tstat(proj: np.ndarray) -> np.ndarray:
        # proj: (..., 1 + q, m) = V_πᵀ R
        num = proj[..., 0, :]
        rss = ss - (proj[..., 1:, :] ** 2).sum(axis=-2) - num**2
        with np.errstate(invalid="ignore", divide="ignore"):
            out: np.ndarray = num / np.sqrt(np.maximum(rss, 0.0) / dof)
        return out

    t = tstat((V.T @ R)[None])[0]
    diff = (u @ Y) / g_norm
    obs = np.abs(t)
    cnt, cnt_max = np.zeros(m), np.zeros(m)
    rows = max(1, _CHUNK // max(m * V.shape[1], 1))
    left = int(n_resamples)
    while left > 0:
        k = min(rows, left, 2048)
        perms = rng.permuted(np.tile(np.arange(n), (k, 1)), axis=1)
        Vp = np.empty((k, n, V.shape[1]))
        Vp[np.arange(k)[:, None], perms] = V[None]  # row i of V goes to row π_i
        _count(obs, np.abs(tstat(np.einsum("kni,nm->kim", Vp, R))), cnt, cnt_max)
        left -= k
    return t, diff, np.full(m, float(dof)), cnt, cnt_max, int(n_resamples), False


def maxt_test(
    Y: ArrayLike,
    in_a: ArrayLike,
    nuisance: np.ndarray | None = None,
    n_resamples: int = 999,
    rng: np.random.Generator | int | None = 0,
) -> MaxTResult:
    """Max-|t| permutation test of group a (``in_a`` True) against the rest, per column of ``Y``.

    ``nuisance`` (n × q, no intercept) holds covariates (see :func:`.covariates.design_columns`);
    with it the test is Freedman–Lane on the OLS t. Columns with a non-finite value or no
    variation are not tested (NaN). See the module docstring for the p-values.
    """
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    a = np.asarray(in_a, dtype=bool)
    if a.shape != (Y.shape[0],):
        raise ValueError(f"in_a has shape {a.shape}; Y has {Y.shape[0]} rows")
    na, nb = int(a.sum()), int((~a).sum())
    if na < 2 or nb < 2:
        raise ValueError(f"each group needs at least 2 subjects, got {na} and {nb}")
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    m = Y.shape[1]
    ok = _valid_columns(Y)
    nan = np.full(m, np.nan)
    if not ok.any():
        return MaxTResult(nan, nan.copy(), nan.copy(), nan.copy(), nan.copy(), float("nan"), 0, False, "none")
    Yv = Y[:, ok]
    if nuisance is not None and np.asarray(nuisance).size:
        nz = np.asarray(nuisance, dtype=np.float64).reshape(Y.shape[0], -1)
        t, diff, df, cnt, cnt_max, used, exact = _freedman_lane(Yv, a, nz, n_resamples, rng)
        statistic = "OLS t of the group coefficient, Freedman-Lane permutation"
    else:
        t, diff, df, cnt, cnt_max, used, exact = _welch(Yv, a, n_resamples, rng)
        statistic = "Welch t, label permutation"
    if used == 0:  # no relabelings asked for: the statistics, no p-values
        p_un, p_fw = np.full(len(t), np.nan), np.full(len(t), np.nan)
    elif exact:
        p_un, p_fw = cnt / used, cnt_max / used
    else:
        p_un, p_fw = (cnt + 1.0) / (used + 1.0), (cnt_max + 1.0) / (used + 1.0)
    undefined = ~np.isfinite(t)
    p_un[undefined], p_fw[undefined] = np.nan, np.nan
    out = {k: nan.copy() for k in ("t", "diff", "df", "p_un", "p_fw")}
    for k, v in (("t", t), ("diff", diff), ("df", df), ("p_un", p_un), ("p_fw", p_fw)):
        out[k][ok] = v
    p_global = float(np.nanmin(p_fw)) if np.isfinite(p_fw).any() else float("nan")
    return MaxTResult(
        t=out["t"],
        diff=out["diff"],
        df=out["df"],
        p_unadjusted=np.minimum(out["p_un"], 1.0),
        p_fwer=np.minimum(out["p_fw"], 1.0),
        p_global=p_global,
        n_perm=int(used),
        exact=bool(exact),
        statistic=statistic,
    )
