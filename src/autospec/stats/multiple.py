"""Multiple-comparison control: Benjamini–Hochberg false discovery rate.

BH (Benjamini & Hochberg 1995) controls the expected proportion of false rejections among all
rejections at level ``alpha`` when the tests are independent or positively dependent (PRDS).
The adjusted value (the "q-value" as reported by most software, equal to
``scipy.stats.false_discovery_control(p, method="bh")``) of the i-th smallest of m p-values is
``min_{j >= i} min(1, m p_(j) / j)``; a test is rejected at FDR ``alpha`` iff its q <= alpha.

NaN p-values (tests that could not be computed) are not part of the family: they get q = NaN and
do not count towards m.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike


def bh_adjust(pvalues: ArrayLike) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values), same shape as ``pvalues``; NaN stays NaN."""
    p = np.asarray(pvalues, dtype=np.float64)
    flat = p.ravel()
    q = np.full(flat.shape, np.nan)
    ok = np.isfinite(flat)
    if np.any((flat[ok] < 0) | (flat[ok] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    m = int(ok.sum())
    if m:
        vals = flat[ok]
        order = np.argsort(vals, kind="mergesort")
        ranked = vals[order] * m / np.arange(1, m + 1)
        # step-up: the running minimum from the largest p-value down
        adj = np.minimum.accumulate(ranked[::-1])[::-1]
        out = np.empty(m)
        out[order] = np.minimum(adj, 1.0)
        q[ok] = out
    return q.reshape(p.shape)


def bh_reject(pvalues: ArrayLike, alpha: float = 0.05) -> np.ndarray:
    """Boolean mask of the tests rejected by BH at FDR level ``alpha`` (NaN never rejected)."""
    q = bh_adjust(pvalues)
    out: np.ndarray = np.nan_to_num(q, nan=np.inf) <= alpha
    return out


def add_bh_columns(df: pd.DataFrame, p_columns: dict[str, str], family: list[str] | None = None) -> pd.DataFrame:
    """Add BH q-value columns to a test table, one family per distinct value of ``family`` columns.

    Parameters
    ----------
    df : the test table.
    p_columns : mapping p-value column -> q-value column to create.
    family : columns whose distinct combinations each form one FDR family (None: the whole table).
    """
    out = df.copy()
    for p_col, q_col in p_columns.items():
        out[q_col] = np.nan
        if not len(out):
            continue
        if family:
            keys = out[family].astype(str).agg("\x1f".join, axis=1)
            for idx in out.groupby(keys, sort=False).groups.values():
                out.loc[idx, q_col] = bh_adjust(out.loc[idx, p_col].to_numpy(dtype=float))
        else:
            out[q_col] = bh_adjust(out[p_col].to_numpy(dtype=float))
    return out
