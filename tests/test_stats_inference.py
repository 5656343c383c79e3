"""Max-t permutation (Welch, Freedman–Lane), covariates, the cross-validated classifier test and
group spectra recomputed from per-subject gradients: each against an independent computation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st
from scipy.stats import binom

from autospec.stats import (
    CovariateError,
    clopper_pearson,
    cv_permutation_test,
    design_columns,
    maxt_test,
    subject_maxt_tests,
    summarise,
)
from autospec.stats.classifier import cv_scores
from autospec.stats.group_spectra import group_permutation_test, group_spectra, matched_masks, rank_zero, spectra


def _ols_t(Y, in_a, cov):
    X = np.column_stack([np.ones(len(Y)), in_a.astype(float), cov])
    beta, *_ = np.linalg.lstsq(X, Y, rcond=None)
    resid = Y - X @ beta
    s2 = (resid**2).sum(0) / (len(Y) - X.shape[1])
    return beta[1] / np.sqrt(s2 * np.linalg.inv(X.T @ X)[1, 1]), beta[1]


# --------------------------------------------------------------------------- max-t
def test_maxt_welch_statistic_and_exact_fwer_by_brute_force():
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(9, 4))
    Y[:4, 1] += 2.0
    in_a = np.arange(9) < 4
    res = maxt_test(Y, in_a, n_resamples=10_000)
    ref = st.ttest_ind(Y[in_a], Y[~in_a], equal_var=False)
    np.testing.assert_allclose(res.t, ref.statistic, rtol=1e-10)
    np.testing.assert_allclose(res.df, ref.df, rtol=1e-10)
    assert res.exact and res.n_perm == math.comb(9, 4)
    # brute force over every relabeling
    maxima, per_col = [], []
    for idx in itertools.combinations(range(9), 4):
        a = np.zeros(9, bool)
        a[list(idx)] = True
        t = np.abs(st.ttest_ind(Y[a], Y[~a], equal_var=False).statistic)
        maxima.append(t.max())
        per_col.append(t)
    maxima, per_col = np.array(maxima), np.array(per_col)
    obs = np.abs(ref.statistic)
    np.testing.assert_allclose(res.p_fwer, [(maxima >= o * (1 - 1e-10)).mean() for o in obs], rtol=1e-12)
    np.testing.assert_allclose(res.p_unadjusted, (per_col >= obs * (1 - 1e-10)).mean(axis=0), rtol=1e-12)
    assert res.p_global == res.p_fwer.min() and (res.p_fwer >= res.p_unadjusted).all()


def test_maxt_skips_constant_and_nonfinite_columns():
    rng = np.random.default_rng(1)
    Y = rng.normal(size=(12, 3))
    Y[:, 1] = 3.0
    Y[0, 2] = -np.inf
    res = maxt_test(Y, np.arange(12) < 6, n_resamples=99)
    assert np.isfinite(res.t[0]) and np.isnan(res.t[1:]).all() and np.isnan(res.p_fwer[1:]).all()
    with pytest.raises(ValueError, match="at least 2"):
        maxt_test(Y, np.arange(12) < 1)
    none = maxt_test(Y, np.arange(12) < 6, n_resamples=0)  # statistics only: no p-values, not p = 1
    assert np.isfinite(none.t[0]) and np.isnan(none.p_fwer).all() and np.isnan(none.p_global)
    assert np.isnan(cv_permutation_test(rng.normal(size=(12, 3)), np.arange(12) < 6, n_resamples=0).p)


def test_freedman_lane_t_equals_least_squares_and_removes_a_confound():
    rng = np.random.default_rng(2)
    n = 60
    in_a = np.arange(n) < 20
    age = rng.normal(size=n) + 1.5 * in_a  # the groups differ in age ...
    Y = np.column_stack([2.0 * age + rng.normal(size=n) for _ in range(5)])  # ... and Y depends on age only
    res = maxt_test(Y, in_a, age[:, None], n_resamples=999, rng=3)
    t, beta = _ols_t(Y, in_a, age - age.mean())
    np.testing.assert_allclose(res.t, t, rtol=1e-9)
    np.testing.assert_allclose(res.diff, beta, rtol=1e-9)
    assert res.p_global > 0.05  # adjusted: no group effect
    assert maxt_test(Y, in_a, n_resamples=999, rng=3).p_global < 0.01  # unadjusted: the confound


def test_global_maxt_false_positive_rate_on_null_data():
    rng = np.random.default_rng(4)
    n_sets = 300
    hits = {"welch": 0, "freedman_lane": 0}
    for i in range(n_sets):
        Y = rng.normal(size=(40, 12)) * rng.uniform(0.5, 2.0, size=12)
        Y[:, 1] = Y[:, 0] + 0.1 * rng.normal(size=40)  # correlated columns: max-t keeps FWER anyway
        in_a = np.arange(40) < (30 if i % 2 else 10)
        hits["welch"] += maxt_test(Y, in_a, n_resamples=199, rng=i).p_global < 0.05
        hits["freedman_lane"] += maxt_test(Y, in_a, rng.normal(size=(40, 1)), n_resamples=199, rng=i).p_global < 0.05
    lo, hi = binom.ppf([0.0005, 0.9995], n_sets, 0.05) / n_sets
    for name, k in hits.items():
        assert lo <= k / n_sets <= hi, (name, k)


# --------------------------------------------------------------------------- covariates
def test_design_columns_numeric_categorical_and_errors():
    block, names = design_columns({"age": [20, 30, "40", 50], "site": ["b", "a", "b", "c"]}, ["s1", "s2", "s3", "s4"])
    assert names == ["age", "site[b]", "site[c]"]
    np.testing.assert_allclose(block[:, 0], [-15, -5, 5, 15])
    np.testing.assert_allclose(block[:, 1:], [[1, 0], [0, 0], [1, 0], [0, 1]])
    with pytest.raises(CovariateError, match=r"^subject s3: covariate 'age' is missing$"):
        design_columns({"age": [20, 30, "", 50]}, ["s1", "s2", "s3", "s4"])
    with pytest.raises(CovariateError, match="subject s2: covariate 'sex' is missing"):
        design_columns({"sex": ["M", None, "F", "M"]}, ["s1", "s2", "s3", "s4"])
    with pytest.raises(CovariateError, match="single level"):
        design_columns({"site": ["a"] * 4}, ["s1", "s2", "s3", "s4"])
    in_a = np.array([True, True, False, False])
    with pytest.raises(ValueError, match="collinear"):
        maxt_test(np.random.default_rng(0).normal(size=(4, 2)), in_a, in_a[:, None].astype(float) - 0.5)


# --------------------------------------------------------------------------- classifier
def test_cv_scores_equal_sklearn_ridge_on_each_fold():
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(5)
    X = rng.normal(size=(30, 7))
    labels = rng.permutation(np.arange(30) < 12)
    fold = np.arange(30) % 3
    pred = np.zeros(30, bool)
    for f in range(3):
        tr, te = fold != f, fold == f
        sc = StandardScaler().fit(X[tr])
        Xtr, Xte = sc.transform(X[tr]), sc.transform(X[te])
        y = np.where(labels[tr], 1 / labels[tr].sum(), -1 / (~labels[tr]).sum())
        lam = np.trace(Xtr @ Xtr.T) / len(Xtr)
        pred[te] = Ridge(alpha=lam, fit_intercept=False).fit(Xtr, y).predict(Xte) > 0
    want = 0.5 * ((pred & labels).sum() / labels.sum() + (~pred & ~labels).sum() / (~labels).sum())
    assert cv_scores(X, labels[None], fold)[0] == pytest.approx(want)


def test_cv_permutation_test_detects_signal_and_not_noise():
    rng = np.random.default_rng(6)
    in_a = np.arange(40) < 25
    X = rng.normal(size=(40, 30))
    X[in_a, :3] += 1.2
    hit = cv_permutation_test(X, in_a, n_resamples=199, rng=0)
    assert hit.score > 0.75 and hit.p < 0.01 and 0.4 < hit.null_mean < 0.6
    pvals = [cv_permutation_test(rng.normal(size=(30, 10)), np.arange(30) < 10, n_resamples=99, rng=i).p
             for i in range(60)]  # fmt: skip
    assert 0.25 < np.mean(pvals) < 0.75  # roughly uniform under the null


# --------------------------------------------------------------------------- group spectra
def test_group_spectra_rank_zero_and_matched_subsets():
    rng = np.random.default_rng(7)
    G = rng.normal(size=(6, 5, 4)).astype(np.float32)
    masks = np.array([[1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 1, 1]], float)
    got = group_spectra(G, masks)
    want = np.linalg.svd(G[:2].astype(float).sum(0), compute_uv=False)
    np.testing.assert_allclose(got[0], want, rtol=1e-12)
    # one subject's rank-one gradient: every value after σ₁ is rounding noise, set to exact 0
    r1 = np.outer(rng.normal(size=5), rng.normal(size=4)).astype(np.float32)[None]
    sv = spectra(r1)
    assert sv[0, 0] > 0 and (sv[0, 1:] == 0.0).all()
    assert rank_zero(np.array([[1.0, 1e-9]]), (5, 4)).tolist() == [[False, True]]
    m = matched_masks(np.arange(10) < 3, np.random.default_rng(0))
    assert m.sum(axis=1).tolist() == [3.0, 3.0] and (m[0, :3] == 1).all() and (m[1, :3] == 0).all()


def test_group_permutation_test_is_calibrated_with_unequal_groups():
    """σ(G_g) grows with N_g: a naive comparison always 'finds' the larger group; permutation does not."""
    rng = np.random.default_rng(8)
    summ = {"log_nuclear": lambda v: summarise(v)["log_nuclear"]}
    n_sets, hits, naive = 60, 0, 0
    for i in range(n_sets):
        G = rng.normal(size=(40, 6, 5)) + 0.3  # a coherent mean plus per-subject noise
        in_a = np.arange(40) < 30
        res = group_permutation_test({"w@0": G}, in_a, summ, n_resamples=99, rng=i)
        hits += res["p_global"] < 0.05
        naive += res["d"][0] > 0
    assert naive == n_sets  # group a (30) always has the larger nuclear norm under the null
    assert hits <= binom.ppf(0.999, n_sets, 0.05)


# --------------------------------------------------------------------------- table function
def test_subject_maxt_tests_table_with_covariates():
    rng = np.random.default_rng(9)
    n = 24
    rows = []
    for i in range(n):
        for step in (0, 1):
            v = np.sort(rng.gamma(20.0, size=4) / 20)[::-1] * (1.6 if i < 8 and step == 1 else 1.0)
            rows.append(
                pd.DataFrame({"step": step, "key": "w", "stat": "grad", "group": i, "index": range(4), "value": v})
            )
    df = pd.concat(rows, ignore_index=True)
    groups = {i: int(i >= 8) for i in range(n)}
    t = subject_maxt_tests(df, groups, {0: "SZ", 1: "HC"}, n_resamples=499, seed=0)
    assert set(t["summary"]) == {"log_sigma1", "log_nuclear", "log_erank"} and len(t) == 6
    assert t["p_global"].nunique() == 1 and t["p_global"].iloc[0] == t["p_fwer"].min()
    step1 = t[(t.step == 1) & (t.summary == "log_nuclear")].iloc[0]
    assert step1["diff"] == pytest.approx(np.log(1.6), abs=0.3) and step1["p_fwer"] < 0.05
    cov = pd.DataFrame({"subject_id": [f"s{i}" for i in range(n)], "age": rng.normal(40, 10, n)})
    adj = subject_maxt_tests(df, groups, n_resamples=199, covariates=cov)
    assert (adj["covariates"] == "age").all() and adj["statistic"].str.contains("Freedman").all()
    cov.loc[5, "age"] = np.nan
    with pytest.raises(CovariateError, match="subject s5: covariate 'age' is missing"):
        subject_maxt_tests(df, groups, n_resamples=9, covariates=cov)


def test_clopper_pearson_matches_scipy():
    ci = st.binomtest(7, 150).proportion_ci(0.95, method="exact")
    assert clopper_pearson(7, 150) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert clopper_pearson(0, 20)[0] == 0.0 and clopper_pearson(20, 20)[1] == 1.0
