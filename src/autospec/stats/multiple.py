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


def bh_adjust(pvalues) -> np.ndarray:
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


def bh_reject(pvalues, alpha: float = 0.05) -> np.ndarray:
    """Boolean mask of the tests rejected by BH at FDR level ``alpha`` (NaN never rejected)."""
    q = bh_adjust(pvalues)
    return np.nan_to_num(q, nan=np.inf) <= alpha


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
            for _, idx in out.groupby(keys, sort=False).groups.items():
                out.loc[idx, q_col] = bh_adjust(out.loc[idx, p_col].to_numpy(dtype=float))
        else:
            out[q_col] = bh_adjust(out[p_col].to_numpy(dtype=float))
    return out


# --------------------------------------------------------------------------- calibration
#: p-value columns of the test tables and the test each one belongs to
P_COLUMNS = {"p": "student_t", "p_welch": "welch_t", "p_perm": "permutation"}


def _as_runs(value) -> list[pd.DataFrame]:
    if isinstance(value, pd.DataFrame):
        return [value]
    return list(value)


def calibration_table(
    results_by_condition: dict[str, pd.DataFrame | list[pd.DataFrame]],
    alpha: float = 0.05,
    null_conditions=None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """False-positive rate (null conditions) and power (planted-effect conditions) per test family.

    Parameters
    ----------
    results_by_condition : condition name -> test tables (one per run, as written by
        ``autospec group-stats``: a ``family`` column and p-value columns ``p``, ``p_welch``,
        ``p_perm``; a ``summary`` column splits families further).
    alpha : significance level.
    null_conditions : names of the conditions without a planted effect (default: names that
        start with ``null``); all others are effect conditions.

    Returns
    -------
    One row per (family, summary, test, condition): ``role`` (null/effect), ``metric``
    (false_positive_rate/power), ``n_runs``, ``n_tests``, ``n_reject`` (p < alpha), ``rate`` with a
    Clopper–Pearson interval (tests within a run are dependent, so this interval is too narrow),
    and per run: ``n_runs_any_fdr`` / ``rate_runs_any_fdr`` — runs in which BH at ``alpha`` over
    that run's family rejects anything (under a complete null this is the family-wise error rate,
    which BH keeps <= alpha; runs are independent, so its interval is honest).
    """
    from scipy.stats import binomtest

    if null_conditions is None:
        null_conditions = [c for c in results_by_condition if str(c).startswith("null")]
    null_conditions = set(null_conditions)
    acc: dict[tuple, dict] = {}
    for cond, value in results_by_condition.items():
        for run in _as_runs(value):
            if run.empty:
                continue
            summary = run["summary"] if "summary" in run else pd.Series("-", index=run.index)
            for (fam, summ), sub in run.groupby([run["family"], summary.fillna("-")], sort=True):
                for col, test in P_COLUMNS.items():
                    if col not in sub:
                        continue
                    p = sub[col].to_numpy(dtype=float)
                    p = p[np.isfinite(p)]
                    if not len(p):
                        continue
                    a = acc.setdefault((fam, summ, test, cond), {"runs": 0, "tests": 0, "rej": 0, "any": 0})
                    a["runs"] += 1
                    a["tests"] += len(p)
                    a["rej"] += int((p < alpha).sum())
                    a["any"] += int(bh_reject(p, alpha).any())
    rows = []
    for (fam, summ, test, cond), a in sorted(acc.items()):
        role = "null" if cond in null_conditions else "effect"
        ci = binomtest(a["rej"], a["tests"]).proportion_ci(confidence, method="exact")
        rows.append(
            {
                "family": fam,
                "summary": summ,
                "test": test,
                "condition": cond,
                "role": role,
                "metric": "false_positive_rate" if role == "null" else "power",
                "alpha": alpha,
                "n_runs": a["runs"],
                "n_tests": a["tests"],
                "n_reject": a["rej"],
                "rate": a["rej"] / a["tests"],
                "ci_low": ci.low,
                "ci_high": ci.high,
                "n_runs_any_fdr": a["any"],
                "rate_runs_any_fdr": a["any"] / a["runs"],
            }
        )
    return pd.DataFrame(rows)


def markdown_table(df: pd.DataFrame, floatfmt: str = ".3g") -> str:
    """A GitHub-flavoured markdown table (no extra dependency)."""

    def fmt(v):
        if isinstance(v, (float, np.floating)):
            return format(v, floatfmt) if np.isfinite(v) else "NaN"
        return str(v)

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


def write_calibration(table: pd.DataFrame, out_tsv, out_md=None) -> None:
    """Write the calibration table as TSV (and markdown), all-or-nothing."""
    from ..atomic import atomic_outputs

    paths = [out_tsv] + ([out_md] if out_md is not None else [])
    with atomic_outputs(*paths) as tmps:
        table.to_csv(tmps[0], sep="\t", index=False)
        if out_md is not None:
            tmps[1].write_text(markdown_table(table))
