"""Calibration: false-positive rate and power of each test family, and the measured table figures read.

- :func:`clopper_pearson`: the exact (conservative) binomial confidence interval of a rate.
- :func:`calibration_table`: rejection rates per family from test tables of null and
  planted-effect runs (used by the test suite and small studies).
- :func:`load_calibration`, :func:`lookup`, :func:`caption`: the measured calibration shipped
  with the package (``calibration_table.json``, written by ``benchmarks/calibration.py merge``
  from the replicate runs in ``benchmarks/results/``); figures print it in their captions.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import beta

from .multiple import bh_reject

CALIBRATION_JSON = "calibration_table.json"


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided Clopper–Pearson interval of a binomial proportion k / n."""
    if n <= 0:
        return (float("nan"), float("nan"))
    a = 1.0 - confidence
    lo = 0.0 if k == 0 else float(beta.ppf(a / 2.0, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1.0 - a / 2.0, k + 1, n - k))
    return lo, hi


#: p-value columns of the test tables and the test each one belongs to
P_COLUMNS = {"p": "student_t", "p_welch": "welch_t", "p_perm": "permutation"}


def _as_runs(value: pd.DataFrame | Sequence[pd.DataFrame]) -> list[pd.DataFrame]:
    if isinstance(value, pd.DataFrame):
        return [value]
    return list(value)


def calibration_table(
    results_by_condition: Mapping[str, pd.DataFrame | Sequence[pd.DataFrame]],
    alpha: float = 0.05,
    null_conditions: Iterable[str] | None = None,
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
    if null_conditions is None:
        null_conditions = [c for c in results_by_condition if str(c).startswith("null")]
    nulls = set(null_conditions)
    acc: dict[tuple[str, str, str, str], dict[str, int]] = {}
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
        role = "null" if cond in nulls else "effect"
        lo, hi = clopper_pearson(a["rej"], a["tests"], confidence)
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
                "ci_low": lo,
                "ci_high": hi,
                "n_runs_any_fdr": a["any"],
                "rate_runs_any_fdr": a["any"] / a["runs"],
            }
        )
    return pd.DataFrame(rows)


def markdown_table(df: pd.DataFrame, floatfmt: str = ".3g") -> str:
    """A GitHub-flavoured markdown table (no extra dependency)."""

    def fmt(v: object) -> str:
        if isinstance(v, (float, np.floating)):
            return format(v, floatfmt) if np.isfinite(v) else "NaN"
        return str(v)

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


def write_calibration(
    table: pd.DataFrame, out_tsv: str | os.PathLike[str], out_md: str | os.PathLike[str] | None = None
) -> None:
    """Write the calibration table as TSV (and markdown), all-or-nothing."""
    from ..atomic import atomic_outputs

    paths: list[str | os.PathLike[str]] = [out_tsv] + ([out_md] if out_md is not None else [])
    with atomic_outputs(*paths) as tmps:
        table.to_csv(tmps[0], sep="\t", index=False)
        if out_md is not None:
            tmps[1].write_text(markdown_table(table))


# --------------------------------------------------------------------------- the shipped table
@dataclass(frozen=True)
class CalibrationRow:
    """One measured rate: a test on one data × model × task and one cohort setting."""

    test: str
    data: str
    model: str
    task: str
    n_sz: int
    n_hc: int
    effect: float
    unit: str  # "replicate" (one decision per data set) or "test" (pooled over dependent tests)
    n: int
    k: int
    rate: float
    ci_low: float
    ci_high: float

    @property
    def role(self) -> str:
        return "null" if self.effect == 0 else "effect"

    @property
    def sizes(self) -> str:
        return f"{self.n_sz}/{self.n_hc}"


@lru_cache(maxsize=1)
def load_calibration() -> dict[str, Any]:
    """The package's measured calibration (``calibration_table.json``); empty when not shipped."""
    try:
        text = resources.files("autospec.stats").joinpath(CALIBRATION_JSON).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return {"tests": {}, "entries": []}
    data: dict[str, Any] = json.loads(text)
    return data


def describe_test(test: str) -> str:
    """The human-readable name of a test id (the id itself when unknown)."""
    info = load_calibration().get("tests", {}).get(test, {})
    return str(info.get("label", test))


def lookup(test: str, data: str | None, model: str | None, task: str | None) -> list[CalibrationRow]:
    """Measured rows of ``test`` on (data, model, task), nulls first, then effects by size."""
    rows = [
        CalibrationRow(**{k: e[k] for k in CalibrationRow.__dataclass_fields__})
        for e in load_calibration().get("entries", [])
        if e["test"] == test and e["data"] == data and e["model"] == model and e["task"] == task
    ]
    return sorted(rows, key=lambda r: (r.effect != 0, r.effect, r.n_sz + r.n_hc, r.n_sz))


def _rate(r: CalibrationRow) -> str:
    return f"{r.rate:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]"


def caption(test: str, data: str | None, model: str | None, task: str | None, effect: float = 1.0) -> str:
    """One caption line: the test's measured false-positive rate per null setting and its power.

    Power is given at ``effect`` (the planted effect of the study's cohort) for every calibrated
    group size. Without a measurement for this data × model × task the line says so.
    """
    rows = lookup(test, data, model, task)
    where = " · ".join(str(v) for v in (data, model, {"autoencode": "AE", "classify": "Cls"}.get(str(task), task)))
    if not rows:
        return f"{describe_test(test)}: not calibrated on {where} (see benchmarks/results/calibration.md)"
    unit = "data sets" if rows[0].unit == "replicate" else "tests"
    nulls = [r for r in rows if r.role == "null"]
    power = [r for r in rows if r.role == "effect" and math.isclose(r.effect, effect)]
    parts = [f"{describe_test(test)} — measured on {where} ({unit}, α = 0.05):"]
    if nulls:
        parts.append("FPR " + ", ".join(f"{r.sizes} {_rate(r)}" for r in nulls))
    if power:
        parts.append(f"power at effect {effect:g}: " + ", ".join(f"{r.sizes} {r.rate:.2f}" for r in power))
    elif effect:
        parts.append(f"power at effect {effect:g}: not measured")
    return " ".join(parts[:1]) + " " + "; ".join(parts[1:])


def fpr_ok(rows: Sequence[CalibrationRow], alpha: float = 0.05) -> bool:
    """True when every null setting's Clopper–Pearson interval contains ``alpha`` (or lies below it)."""
    nulls = [r for r in rows if r.role == "null"]
    return bool(nulls) and all(r.ci_low <= alpha for r in nulls)


def as_frame(entries: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The shipped entries as a DataFrame (for docs and checks)."""
    return pd.DataFrame(list(entries))


__all__ = [
    "CALIBRATION_JSON",
    "CalibrationRow",
    "as_frame",
    "calibration_table",
    "caption",
    "clopper_pearson",
    "describe_test",
    "fpr_ok",
    "load_calibration",
    "lookup",
    "markdown_table",
    "write_calibration",
]
