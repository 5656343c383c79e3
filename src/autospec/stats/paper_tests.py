"""The seed paper's group tests, reproduced as described — NOT valid inference.

Baker, Calhoun & Plis (arXiv 2406.11825) compare two groups with plain two-tailed Student
t-tests (equal variances):

(a) ``paper_step_tests``: at each recorded step, for each weight and statistic, the singular
    values of group a's spectrum are one sample and those of group b's the other;
(b) ``paper_index_tests``: for each singular-value index, the values over all recorded steps
    (epochs) are the samples.

Neither treats independent units as samples. The singular values of one spectrum are ordered,
come from one matrix and are strongly dependent; consecutive epochs of one training run are
autocorrelated by construction. The t distribution's degrees of freedom are therefore wrong and
the p-values are not calibrated (see docs/statistics.md and the calibration tables). They are
kept, labelled ``paper``, only to reproduce the paper's figures; use the seed- and subject-level
tests in :mod:`autospec.stats.inference` for inference.

Both are computed from per-group means and variances in one vectorised pass (identical to
``scipy.stats.ttest_ind(equal_var=True)``; NaN values are left out of a sample). Singular values
beyond the numerical rank (``rank_zero`` rows) are not data and are left out too.

Measured (benchmarks/results/calibration.md): view (b) rejects far more often than α on null
cohorts, and its null rejections concentrate on particular layers (the architecture's, not the
groups'); view (a) almost never rejects when the groups are of equal size and rejects often when
they are not, because σ(G_g) grows with the group size N_g.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats as _st

from .summaries import drop_rank_zero, group_pairs

LABEL = "paper (not valid inference: dependent samples)"


def _moments(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    df = drop_rank_zero(df)
    g = df[df["group"] >= 0].groupby([*by, "group"], sort=True)["value"]
    return pd.concat([g.count().rename("n"), g.mean().rename("mean"), g.var(ddof=1).rename("var")], axis=1)


def _student(m: pd.DataFrame, by: list[str], names: Mapping[int, str], view: str) -> pd.DataFrame:
    parts = []
    for a, b in group_pairs(m.index.get_level_values("group").unique()):
        ma = m.xs(a, level="group")
        mb = m.xs(b, level="group")
        j = ma.add_suffix("_a").join(mb.add_suffix("_b"), how="inner")
        na, nb = j["n_a"].to_numpy(float), j["n_b"].to_numpy(float)
        dfree = na + nb - 2
        with np.errstate(invalid="ignore", divide="ignore"):
            sp2 = ((na - 1) * j["var_a"].to_numpy() + (nb - 1) * j["var_b"].to_numpy()) / dfree
            t = (j["mean_a"].to_numpy() - j["mean_b"].to_numpy()) / np.sqrt(sp2 * (1 / na + 1 / nb))
        # fewer than 2 values, or no variation in either group: t is undefined (NaN), not ±inf
        small = (na < 2) | (nb < 2) | ~(sp2 > 1e-24 * np.maximum(j["mean_a"].abs(), j["mean_b"].abs()).to_numpy() ** 2)
        t[small] = np.nan
        p = 2.0 * _st.t.sf(np.abs(t), dfree)
        out = j.reset_index()[by].copy()
        out["group_a"], out["group_b"] = a, b
        out["name_a"], out["name_b"] = names.get(a, f"group{a}"), names.get(b, f"group{b}")
        out["n_a"], out["n_b"] = na.astype(int), nb.astype(int)
        out["mean_a"], out["mean_b"] = j["mean_a"].to_numpy(), j["mean_b"].to_numpy()
        out["diff"] = out["mean_a"] - out["mean_b"]
        out["t"], out["df"], out["p"] = t, np.where(small, np.nan, dfree), p
        parts.append(out)
    if not parts:
        return pd.DataFrame()
    res = pd.concat(parts, ignore_index=True)
    res.insert(0, "family", view)
    res["label"] = LABEL
    return res


def paper_step_tests(df: pd.DataFrame, group_names: Mapping[int, str] | None = None) -> pd.DataFrame:
    """View (a): per step, key, stat and pair of groups, singular values as the samples."""
    by = ["step", "key", "stat"]
    return _student(_moments(df, by), by, dict(group_names or {}), "paper_step")


def paper_index_tests(df: pd.DataFrame, group_names: Mapping[int, str] | None = None) -> pd.DataFrame:
    """View (b): per singular-value index, key, stat and pair of groups, steps as the samples."""
    by = ["key", "stat", "index"]
    return _student(_moments(df, by), by, dict(group_names or {}), "paper_index")
