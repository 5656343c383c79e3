"""Test tables with independent units as samples: seeds or subjects.

- :func:`seed_tests`: one summary per run (seed) and group; Welch t, permutation, Hedges' g.
- :func:`subject_tests`: one summary of σ(A_iᵀΔ_i) per subject, per (weight, step); uncorrected
  per-cell tests (BH q-values added).
- :func:`subject_maxt_tests`: the recommended test — every per-subject summary of every weight
  and recorded step in one max-|t| permutation test (FWER over all of them; one global p-value),
  with Freedman–Lane adjustment for covariates.
- :func:`subject_cv_test`: a cross-validated classifier on the same per-subject features, with a
  permutation test on its held-out balanced accuracy.

All of them treat subjects as exchangeable under the null. That holds when the network was trained
without the group labels (auto-encoding); for a network trained to classify the groups the
per-subject gradients depend on the labels and none of these is a valid test (see
docs/statistics.md, "Classifiers").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

import numpy as np
import pandas as pd
from scipy import stats as _st

from .classifier import cv_permutation_test
from .covariates import design_columns
from .inference import compare_two_groups
from .maxt import maxt_test
from .multiple import add_bh_columns
from .summaries import group_pairs, normalise_by_group_size, spectrum_summaries

#: summaries the recommended (max-t) test uses by default
MAXT_SUMMARIES = ("log_sigma1", "log_nuclear", "log_erank")
#: per-cell summaries of the seed and subject tables
CELL_SUMMARIES = ("log_sigma1", "log_nuclear")


def _table(cols: pd.DataFrame, res: Mapping[str, object], a: int, b: int, names: Mapping[int, str]) -> pd.DataFrame:
    t = cols.copy()
    t["group_a"], t["group_b"] = a, b
    t["name_a"], t["name_b"] = names.get(a, f"group{a}"), names.get(b, f"group{b}")
    for k in ("n_a", "n_b", "mean_a", "mean_b", "sd_a", "sd_b"):
        t[k] = res[k]
    t["diff"] = np.asarray(res["mean_a"]) - np.asarray(res["mean_b"])
    for k in ("t", "df", "p_welch", "p_perm"):
        t[k] = res[k]
    t["n_perm"], t["perm_exact"] = res["n_perm"], res["perm_exact"]
    for k in ("g", "g_se", "g_ci_low", "g_ci_high"):
        t[k] = res[k]
    return t


def _finish(parts: list[pd.DataFrame], family: str) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, ignore_index=True)
    out.insert(0, "family", family)
    # one FDR family per (table, summary): every stat, key, step and group pair of it
    return add_bh_columns(out, {"p_welch": "q_welch", "p_perm": "q_perm"}, family=["summary"])


def seed_tests(
    runs: Sequence[pd.DataFrame],
    group_names: Mapping[int, str] | None = None,
    group_sizes: Mapping[int, int] | None = None,
    n_resamples: int = 9999,
    seed: int = 0,
    *,
    summaries: Sequence[str] = CELL_SUMMARIES,
) -> pd.DataFrame:
    """Between-group tests across seeds: one summary per run (seed) and group is one sample.

    ``runs`` are spectra tables of the same configuration trained with different seeds. With
    ``group_sizes`` the summaries are put on a per-sample scale first (see
    :func:`.summaries.normalise_by_group_size`: exact for the coherent part only).
    """
    if len(runs) < 2:
        raise ValueError(f"seed tests need at least 2 runs (seeds), got {len(runs)}")
    names = dict(group_names or {})
    wide = []
    norm = "none"
    for df in runs:
        s = spectrum_summaries(df[df["group"] >= 0])
        s, norm = normalise_by_group_size(s[s["summary"].isin(summaries)], group_sizes)
        wide.append(s.set_index(["summary", "stat", "key", "step", "group"])["value"])
    W = pd.concat(wide, axis=1, keys=range(len(runs))).T  # runs × (summary, stat, key, step, group)
    parts = []
    groups = W.columns.get_level_values("group").unique()
    for a, b in group_pairs(groups):
        Wa = W.xs(a, axis=1, level="group")
        Wb = W.xs(b, axis=1, level="group").reindex(columns=Wa.columns)
        res = compare_two_groups(Wa.to_numpy(), Wb.to_numpy(), n_resamples, np.random.default_rng([seed, a, b]))
        t = _table(Wa.columns.to_frame(index=False), res, a, b, names)
        t["normalisation"] = norm
        t["n_runs"] = len(runs)
        parts.append(t)
    return _finish(parts, "seed")


SubjectSpectra: TypeAlias = pd.DataFrame | Sequence[pd.DataFrame]


def _one_features(subject_df: pd.DataFrame, labels: pd.Series, stat: str, summaries: Sequence[str]) -> pd.DataFrame:
    sel = subject_df[(subject_df["stat"] == stat) & (subject_df["group"] >= 0)]  # -1: whole batch
    summ = spectrum_summaries(sel)
    summ = summ[summ["summary"].isin(summaries)]
    if summ.empty:
        raise ValueError(f"no '{stat}' spectra in the subject spectra")
    W = summ.set_index(["summary", "key", "step", "group"])["value"].unstack("group").T  # subjects × tests
    unknown = sorted(set(W.index) - set(labels.index))
    if unknown:
        raise ValueError(f"subject spectra hold sample indices {unknown[:5]} that have no group")
    return W


def subject_features(
    subject_df: SubjectSpectra,
    subject_groups: Mapping[int, int] | pd.Series,
    *,
    stat: str = "grad",
    summaries: Sequence[str] = MAXT_SUMMARIES,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-subject summaries as a wide table (subjects × (summary, key, step)) and the group ids.

    ``subject_df`` is a spectra table whose ``group`` column holds the sample index, or a list of
    them — one per training seed of the same configuration — whose summaries are averaged per
    subject (they must hold the same subjects, weights and steps). ``subject_groups`` maps sample
    index -> group id.
    """
    labels = pd.Series(subject_groups).astype(int)
    tables = [subject_df] if isinstance(subject_df, pd.DataFrame) else list(subject_df)
    if not tables:
        raise ValueError("no subject spectra given")
    Ws = [_one_features(t, labels, stat, summaries) for t in tables]
    W = Ws[0]
    for i, other in enumerate(Ws[1:], start=2):
        if not (other.index.equals(W.index) and other.columns.equals(W.columns)):
            raise ValueError(f"subject spectra {i} do not hold the same subjects, weights and steps as the first")
    if len(Ws) > 1:
        W = sum(Ws[1:], Ws[0]) / len(Ws)
    return W, labels.reindex(W.index).to_numpy()


def _nuisance(covariates: pd.DataFrame | None, index: pd.Index, keep: np.ndarray) -> np.ndarray | None:
    """Design block of the covariates for the kept subjects (a ``subject_id`` column names them in errors)."""
    if covariates is None:
        return None
    cov = covariates.reindex(index[keep])
    names = [str(c) for c in cov.columns if c != "subject_id"]
    if not names:
        return None
    ids = cov["subject_id"].astype(str).tolist() if "subject_id" in cov else [f"index {i}" for i in index[keep]]
    block, _ = design_columns({c: cov[c].to_numpy(dtype=object) for c in names}, ids)
    return block


def _covariate_names(covariates: pd.DataFrame | None) -> str:
    return "" if covariates is None else ",".join(str(c) for c in covariates.columns if c != "subject_id")


def subject_tests(
    subject_df: SubjectSpectra,
    subject_groups: Mapping[int, int] | pd.Series,
    group_names: Mapping[int, str] | None = None,
    n_resamples: int = 9999,
    seed: int = 0,
    *,
    stat: str = "grad",
    covariates: pd.DataFrame | None = None,
    summaries: Sequence[str] = CELL_SUMMARIES,
) -> pd.DataFrame:
    """Per-(weight, step) between-group tests across subjects, uncorrected (BH q-values added).

    With ``covariates`` (a table indexed by sample index, one column per covariate) ``t`` is the
    OLS t of the group coefficient adjusted for them, ``p_welch`` its parametric p-value and
    ``p_perm`` the Freedman–Lane permutation p-value; ``diff`` is the adjusted difference.
    """
    names = dict(group_names or {})
    W, lab = subject_features(subject_df, subject_groups, stat=stat, summaries=summaries)
    cols = W.columns.to_frame(index=False)
    cols.insert(1, "stat", stat)
    parts = []
    for a, b in group_pairs(np.unique(lab)):
        if covariates is None:
            Y = W.to_numpy()
            res = compare_two_groups(Y[lab == a], Y[lab == b], n_resamples, np.random.default_rng([seed, a, b]))
            t = _table(cols, res, a, b, names)
            t["normalisation"] = "none"
        else:
            t = _adjusted_table(W, lab, a, b, cols, names, covariates, n_resamples, seed)
        parts.append(t)
    return _finish(parts, "subject")


def _adjusted_table(  # noqa: PLR0917 (private helper of subject_tests)
    W: pd.DataFrame,
    lab: np.ndarray,
    a: int,
    b: int,
    cols: pd.DataFrame,
    names: Mapping[int, str],
    covariates: pd.DataFrame,
    n_resamples: int,
    seed: int,
) -> pd.DataFrame:
    keep = (lab == a) | (lab == b)
    Y = W.to_numpy()[keep]
    in_a = lab[keep] == a
    nz = _nuisance(covariates, W.index, keep)
    res = maxt_test(Y, in_a, nz, n_resamples, np.random.default_rng([seed, a, b]))
    t = cols.copy()
    t["group_a"], t["group_b"] = a, b
    t["name_a"], t["name_b"] = names.get(a, f"group{a}"), names.get(b, f"group{b}")
    t["n_a"], t["n_b"] = int(in_a.sum()), int((~in_a).sum())
    t["mean_a"], t["mean_b"] = np.nanmean(Y[in_a], axis=0), np.nanmean(Y[~in_a], axis=0)
    t["diff"], t["t"], t["df"] = res.diff, res.t, res.df
    t["p_welch"] = 2.0 * _st.t.sf(np.abs(res.t), res.df)
    t["p_perm"], t["n_perm"], t["perm_exact"] = res.p_unadjusted, res.n_perm, res.exact
    t["normalisation"] = "covariates: " + _covariate_names(covariates)
    return t


def subject_maxt_tests(
    subject_df: SubjectSpectra,
    subject_groups: Mapping[int, int] | pd.Series,
    group_names: Mapping[int, str] | None = None,
    n_resamples: int = 9999,
    seed: int = 0,
    *,
    stat: str = "grad",
    covariates: pd.DataFrame | None = None,
    summaries: Sequence[str] = MAXT_SUMMARIES,
) -> pd.DataFrame:
    """The recommended test: max-|t| permutation over every (summary, weight, step) of the subjects.

    One row per (summary, key, step, pair): ``t``, ``diff`` (mean_a − mean_b, adjusted for the
    covariates when given), ``p_unadjusted``, ``p_fwer`` (Westfall–Young, FWER over every row of
    the pair), and the pair's ``p_global`` (= its smallest ``p_fwer``). See :mod:`.maxt`. With a
    list of subject spectra (one per seed) the per-subject summaries are averaged over the seeds
    first (family ``subject_maxt_seedavg``).
    """
    names = dict(group_names or {})
    W, lab = subject_features(subject_df, subject_groups, stat=stat, summaries=summaries)
    cols = W.columns.to_frame(index=False)
    cols.insert(1, "stat", stat)
    parts = []
    for a, b in group_pairs(np.unique(lab)):
        keep = (lab == a) | (lab == b)
        Y = W.to_numpy()[keep]
        in_a = lab[keep] == a
        nz = _nuisance(covariates, W.index, keep)
        res = maxt_test(Y, in_a, nz, n_resamples, np.random.default_rng([seed, a, b]))
        t = cols.copy()
        t["group_a"], t["group_b"] = a, b
        t["name_a"], t["name_b"] = names.get(a, f"group{a}"), names.get(b, f"group{b}")
        t["n_a"], t["n_b"] = int(in_a.sum()), int((~in_a).sum())
        with np.errstate(invalid="ignore"):
            t["mean_a"], t["mean_b"] = Y[in_a].mean(axis=0), Y[~in_a].mean(axis=0)
        t["diff"], t["t"], t["df"] = res.diff, res.t, res.df
        t["p_unadjusted"], t["p_fwer"], t["p_global"] = res.p_unadjusted, res.p_fwer, res.p_global
        t["n_perm"], t["perm_exact"], t["statistic"] = res.n_perm, res.exact, res.statistic
        t["covariates"] = _covariate_names(covariates) if nz is not None else ""
        parts.append(t)
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, ignore_index=True)
    n_seeds = 1 if isinstance(subject_df, pd.DataFrame) else len(subject_df)
    out.insert(0, "family", "subject_maxt" if n_seeds == 1 else "subject_maxt_seedavg")
    out["n_seeds"] = n_seeds
    return out


def subject_cv_test(
    subject_df: SubjectSpectra,
    subject_groups: Mapping[int, int] | pd.Series,
    group_names: Mapping[int, str] | None = None,
    n_resamples: int = 999,
    seed: int = 0,
    *,
    stat: str = "grad",
    summaries: Sequence[str] = MAXT_SUMMARIES,
) -> pd.DataFrame:
    """Cross-validated ridge classifier on the per-subject features; permutation p of its balanced accuracy."""
    names = dict(group_names or {})
    W, lab = subject_features(subject_df, subject_groups, stat=stat, summaries=summaries)
    rows = []
    for a, b in group_pairs(np.unique(lab)):
        keep = (lab == a) | (lab == b)
        res = cv_permutation_test(W.to_numpy()[keep], lab[keep] == a, n_resamples=n_resamples, rng=[seed, a, b])
        rows.append(
            {
                "family": "subject_cv",
                "stat": stat,
                "group_a": a,
                "group_b": b,
                "name_a": names.get(a, f"group{a}"),
                "name_b": names.get(b, f"group{b}"),
                "n_a": int((lab == a).sum()),
                "n_b": int((lab == b).sum()),
                "n_features": res.n_features,
                "balanced_accuracy": res.score,
                "null_mean": res.null_mean,
                "p_perm": res.p,
                "n_perm": res.n_perm,
                "folds": res.folds,
            }
        )
    return pd.DataFrame(rows)
