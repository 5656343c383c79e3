"""Group statistics: the paper's t-tests, Welch/permutation/Hedges' g, BH FDR, calibration, CLI.

Spectra come from the real recorder: tiny MLPs trained a few full-batch epochs on a prepared
dataset whose group 1 inputs can be scaled (a planted effect). ``make_dataset`` / ``make_run``
live in recorded_runs.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from recorded_runs import make_dataset, make_run
from scipy import stats as st

from autospec.atomic import sha256_file
from autospec.cli import main
from autospec.rundir import read_subjects, subject_group_ids
from autospec.stats import (
    bh_adjust,
    bh_reject,
    calibration_table,
    compare_two_groups,
    hedges_g,
    paper_index_tests,
    paper_step_tests,
    permutation_pvalues,
    seed_tests,
    spectrum_summaries,
    subject_features,
    subject_maxt_tests,
    subject_tests,
    write_calibration,
)
from autospec.stats.summaries import normalise_by_group_size


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three seeds on a dataset with a planted effect, plus one null run (effect 0)."""
    root = tmp_path_factory.mktemp("runs")
    ds = make_dataset(root / "eff" / "data.npz", effect=1.0)
    null = make_dataset(root / "null" / "data.npz", effect=0.0, seed=1)
    return {
        "dirs": [make_run(root / f"seed{s}", ds, seed=s) for s in range(3)],
        "null": make_run(root / "nullrun", null, seed=0),
        "root": root,
    }


def _spectra(d: Path) -> pd.DataFrame:
    return pd.read_parquet(d / "spectra.parquet")


def _subject_groups(d: Path) -> pd.Series:
    return subject_group_ids(read_subjects(d / "subjects.tsv"), {0: "HC", 1: "SZ"}, d / "subjects.tsv")


# --------------------------------------------------------------------------- paper tests
def test_paper_step_test_equals_scipy_student_t_on_recorded_spectra(runs):
    df = _spectra(runs["dirs"][0])
    res = paper_step_tests(df, {0: "HC", 1: "SZ"})
    assert set(res["family"]) == {"paper_step"} and res["label"].str.contains("not valid").all()
    for step, key, stat in [
        (0, "layers.0.weight", "grad"),
        (5, "layers.1.weight", "act"),
        (3, "layers.0.weight", "delta"),
    ]:
        sel = df[(df.step == step) & (df.key == key) & (df.stat == stat)]
        a = sel[sel.group == 0].value.to_numpy()
        b = sel[sel.group == 1].value.to_numpy()
        ref = st.ttest_ind(a, b, equal_var=True)
        row = res[(res.step == step) & (res.key == key) & (res.stat == stat)].iloc[0]
        assert row.name_a == "HC" and row.name_b == "SZ" and row.n_a == len(a)
        assert row.t == pytest.approx(ref.statistic, rel=1e-9)
        assert row.p == pytest.approx(ref.pvalue, rel=1e-9)
        assert row.df == len(a) + len(b) - 2


def test_paper_index_test_uses_the_steps_as_samples(runs):
    df = _spectra(runs["dirs"][1])
    res = paper_index_tests(df)
    sel = df[(df.key == "layers.0.weight") & (df.stat == "grad") & (df["index"] == 2)]
    ref = st.ttest_ind(sel[sel.group == 0].value, sel[sel.group == 1].value, equal_var=True)
    row = res[(res.key == "layers.0.weight") & (res.stat == "grad") & (res["index"] == 2)].iloc[0]
    assert row.n_a == df.step.nunique() and row.name_a == "group0"
    assert row.t == pytest.approx(ref.statistic, rel=1e-9) and row.p == pytest.approx(ref.pvalue, rel=1e-9)
    # σ(A) of the first layer is the fixed input data: constant over epochs, so t is undefined
    const = res[(res.key == "layers.0.weight") & (res.stat == "act")]
    assert const["t"].isna().all() and const["p"].isna().all()


# --------------------------------------------------------------------------- FDR, effect size, tests
def test_bh_matches_the_worked_example_and_scipy():
    # Benjamini & Hochberg (1995), section 4: 15 p-values, FDR 0.05 rejects the four smallest
    p = [
        0.0001,
        0.0004,
        0.0019,
        0.0095,
        0.0201,
        0.0278,
        0.0298,
        0.0344,
        0.0459,
        0.3240,
        0.4262,
        0.5719,
        0.6528,
        0.7590,
        1.0000,
    ]
    assert bh_reject(p, 0.05).tolist() == [True] * 4 + [False] * 11
    np.testing.assert_allclose(bh_adjust(p), st.false_discovery_control(p, method="bh"), rtol=1e-12)
    assert bh_adjust(p)[3] == pytest.approx(0.0095 * 15 / 4)
    rng = np.random.default_rng(0)
    q = rng.uniform(size=50) ** 3
    with_nan = np.r_[q, np.nan, np.nan]
    adj = bh_adjust(with_nan)
    np.testing.assert_allclose(adj[:50], st.false_discovery_control(q), rtol=1e-12)  # NaN not in the family
    assert np.isnan(adj[50:]).all()


def test_hedges_g_matches_a_hand_computed_example():
    # a = 2,4,6,8 (mean 5, var 20/3); b = 1,2,3 (mean 2, var 1): s_p² = (3·20/3 + 2·1)/5 = 4.4,
    # d = 3/√4.4, J = 1 − 3/(4·7 − 9) = 16/19, g = J d = 1.2043738,
    # SE = √(7/12 + g²/14) = 0.8288194, 95 % CI = g ± 1.959964 SE = (−0.4200824, 2.8288300)
    h = hedges_g([2, 4, 6, 8], [1, 2, 3])
    assert float(h.g) == pytest.approx(16 / 19 * 3 / math.sqrt(4.4), rel=1e-12)
    assert float(h.g) == pytest.approx(1.2043738, abs=1e-7)
    assert float(h.se) == pytest.approx(0.8288194, abs=1e-7)
    assert (float(h.ci_low), float(h.ci_high)) == pytest.approx((-0.4200824, 2.8288300), abs=1e-6)


def test_welch_columns_equal_scipy_and_degenerate_columns_are_nan():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(9, 4)), rng.normal(0.7, 2.0, size=(13, 4))
    a[:, 3], b[:, 3] = 1.0, 2.0  # no variation: undefined, not ±inf
    res = compare_two_groups(a, b, n_resamples=0)
    ref = st.ttest_ind(a[:, :3], b[:, :3], equal_var=False, axis=0)
    np.testing.assert_allclose(res["t"][:3], ref.statistic, rtol=1e-12)
    np.testing.assert_allclose(res["p_welch"][:3], ref.pvalue, rtol=1e-12)
    np.testing.assert_allclose(res["df"][:3], ref.df, rtol=1e-12)
    assert np.isnan(res["t"][3]) and np.isnan(res["p_welch"][3]) and np.isnan(res["g"][3])
    assert res["mean_a"][3] == 1.0 and res["mean_b"][3] == 2.0


def test_exact_permutation_p_equals_scipy_permutation_test():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=5), rng.normal(1.0, size=5)

    def welch(x, y, axis):
        return st.ttest_ind(x, y, axis=axis, equal_var=False).statistic

    ref = st.permutation_test((a, b), welch, permutation_type="independent", vectorized=True, n_resamples=10_000, rng=0)
    p, used, exact = permutation_pvalues(np.r_[a, b], 5, n_resamples=10_000)
    assert exact and used == math.comb(10, 5)
    assert p[0] == pytest.approx(ref.pvalue, rel=1e-12)


def test_permutation_p_is_within_monte_carlo_error_of_the_t_test_on_normal_data():
    rng = np.random.default_rng(3)
    B = 4000
    a = rng.normal(size=(15, 40))
    b = rng.normal(size=(15, 40)) + np.linspace(0.0, 1.2, 40)
    res = compare_two_groups(a, b, n_resamples=B, rng=4)
    assert res["n_perm"] == B and not res["perm_exact"]
    p_t, p_perm = res["p_welch"], res["p_perm"]
    mc_se = np.sqrt(p_t * (1 - p_t) / B)
    # Monte Carlo error plus the small gap between the t and the permutation distribution
    assert np.all(np.abs(p_perm - p_t) <= 4 * mc_se + 0.01), np.abs(p_perm - p_t).max()


def test_false_positive_rate_is_close_to_alpha_on_null_data():
    rng = np.random.default_rng(5)
    m = 400
    a, b = rng.normal(size=(10, m)), rng.normal(size=(12, m))
    res = compare_two_groups(a, b, n_resamples=999, rng=6)
    lo, hi = st.binom.ppf([0.0005, 0.9995], m, 0.05) / m  # 99.9 % range of a calibrated test
    for col in ("p_welch", "p_perm"):
        rate = float(np.mean(res[col] < 0.05))
        assert lo <= rate <= hi, (col, rate)
    # the paper's test on independent normal data is calibrated too: its problem is dependence
    p_paper = [st.ttest_ind(a[:, j], b[:, j]).pvalue for j in range(m)]
    assert lo <= np.mean(np.asarray(p_paper) < 0.05) <= hi


# --------------------------------------------------------------------------- summaries and tables
def test_summaries_and_group_size_normalisation(runs):
    df = _spectra(runs["dirs"][0])
    s = spectrum_summaries(df)
    sel = df[(df.step == 2) & (df.key == "layers.1.weight") & (df.stat == "grad") & (df.group == 1)].value
    row = s[(s.step == 2) & (s.key == "layers.1.weight") & (s.stat == "grad") & (s.group == 1)].set_index("summary")
    assert row.loc["log_sigma1", "value"] == pytest.approx(np.log(sel.max()))
    assert row.loc["log_nuclear", "value"] == pytest.approx(np.log(sel.sum()))
    # effective rank: entropy of σ_k / Σσ (rank-one per-subject gradients have 0)
    share = sel.to_numpy() / sel.sum()
    share = share[share > 0]
    assert row.loc["log_erank", "value"] == pytest.approx(-(share * np.log(share)).sum())
    n, norm = normalise_by_group_size(s[s.group >= 0], {0: 12, 1: 20})
    assert norm == "group_size"
    j = s[s.group >= 0].index
    shift = (s.loc[j, "value"] - n["value"]).to_numpy()
    expect = np.where(s.loc[j, "stat"] == "grad", 1.0, 0.5) * np.log(np.where(s.loc[j, "group"] == 0, 12, 20))
    expect = np.where(s.loc[j, "summary"] == "log_erank", 0.0, expect)  # scale-free: not normalised
    np.testing.assert_allclose(shift, expect)


def test_seed_tests_use_one_value_per_seed_and_group(runs):
    dfs = [_spectra(d) for d in runs["dirs"]]
    res = seed_tests(dfs, {0: "HC", 1: "SZ"}, {0: 12, 1: 12}, n_resamples=999, seed=0)
    assert set(res["family"]) == {"seed"} and (res["n_a"] == 3).all() and (res["n_runs"] == 3).all()
    assert res["perm_exact"].all() and (res["n_perm"] == 20).all()  # C(6, 3) relabelings
    row = res[
        (res.summary == "log_sigma1") & (res.stat == "grad") & (res.key == "layers.0.weight") & (res.step == 4)
    ].iloc[0]
    vals = {
        g: [
            np.log(
                df[(df.step == 4) & (df.key == "layers.0.weight") & (df.stat == "grad") & (df.group == g)].value.max()
            )
            - np.log(12)
            for df in dfs
        ]
        for g in (0, 1)
    }
    ref = st.ttest_ind(vals[0], vals[1], equal_var=False)
    assert row.t == pytest.approx(ref.statistic, rel=1e-9) and row.p_welch == pytest.approx(ref.pvalue, rel=1e-9)
    assert row["diff"] == pytest.approx(np.mean(vals[0]) - np.mean(vals[1]))
    for _summ, fam in res.groupby("summary"):  # one BH family per summary
        np.testing.assert_allclose(fam["q_welch"], bh_adjust(fam["p_welch"].to_numpy()), equal_nan=True)
    with pytest.raises(ValueError, match="at least 2 runs"):
        seed_tests(dfs[:1])


def test_subject_tests_find_the_planted_effect(runs):
    d = runs["dirs"][0]
    subj = _subject_groups(d)
    res = subject_tests(pd.read_parquet(d / "subject_spectra.parquet"), subj, {0: "HC", 1: "SZ"}, n_resamples=999)
    assert set(res["family"]) == {"subject"} and (res["n_a"] == 12).all() and (res["n_b"] == 12).all()
    # group 1's inputs are twice as large, so its per-subject first-layer gradients are larger
    first = res[(res.key == "layers.0.weight") & (res.summary == "log_sigma1")].set_index("step")
    assert (first["diff"] < 0).all()
    assert first.loc[0, "q_perm"] < 0.05 and first.loc[0, "q_welch"] < 0.05 and first.loc[0, "g_ci_high"] < 0
    # the same model on a dataset without the effect: nothing survives FDR
    n = runs["null"]
    subj = _subject_groups(n)
    null = subject_tests(pd.read_parquet(n / "subject_spectra.parquet"), subj, n_resamples=999)
    assert (null["q_perm"] > 0.05).all() and (null["q_welch"] > 0.05).all()


# --------------------------------------------------------------------------- calibration
def test_calibration_table_on_synthetic_p_values(tmp_path):
    rng = np.random.default_rng(7)

    def table(p):
        return pd.DataFrame({"family": "seed", "summary": "log_sigma1", "p_welch": p, "p_perm": p})

    null = [table(rng.uniform(size=100)) for _ in range(20)]
    eff = [table(rng.beta(0.05, 1.0, size=100)) for _ in range(5)]
    cal = calibration_table({"null": null, "effect_d1": eff}, alpha=0.05)
    assert len(cal) == 4
    n = cal[(cal.condition == "null") & (cal.test == "welch_t")].iloc[0]
    assert n.role == "null" and n.metric == "false_positive_rate" and n.n_runs == 20 and n.n_tests == 2000
    assert n.n_reject == sum(int((t.p_welch < 0.05).sum()) for t in null)
    assert n.ci_low <= 0.05 <= n.ci_high
    assert n.n_runs_any_fdr == sum(bool(bh_reject(t.p_welch).any()) for t in null)
    e = cal[(cal.condition == "effect_d1") & (cal.test == "permutation")].iloc[0]
    assert e.metric == "power" and e.rate > 0.5 and e.rate_runs_any_fdr == 1.0
    write_calibration(cal, tmp_path / "cal.tsv", tmp_path / "cal.md")
    assert pd.read_csv(tmp_path / "cal.tsv", sep="\t").shape == cal.shape
    md = (tmp_path / "cal.md").read_text().splitlines()
    assert md[0].startswith("| family |") and len(md) == 2 + len(cal)


def test_calibration_on_recorded_spectra(runs):
    def subj(d):
        return subject_tests(pd.read_parquet(d / "subject_spectra.parquet"), _subject_groups(d), n_resamples=199)

    eff = [subj(d) for d in runs["dirs"][:2]]
    null = [subj(runs["null"])]
    cal = calibration_table({"null": null, "planted": eff})
    assert set(cal["condition"]) == {"null", "planted"} and set(cal["family"]) == {"subject"}
    row = cal[(cal.condition == "planted") & (cal.test == "welch_t") & (cal.summary == "log_nuclear")].iloc[0]
    assert row.n_runs == 2 and row.n_tests == int(eff[0][eff[0].summary == "log_nuclear"].p_welch.notna().sum()) * 2
    pw = cal.set_index(["condition", "test", "summary"])["rate"]
    assert pw["planted", "welch_t", "log_nuclear"] > pw["null", "welch_t", "log_nuclear"]


# --------------------------------------------------------------------------- the command
def _stats_cli(runs, out, *extra):
    d = runs["dirs"]
    argv = [
        "group-stats",
        "--spectra",
        *[str(x / "spectra.parquet") for x in d],
        "--subject-spectra",
        str(d[0] / "subject_spectra.parquet"),
        "--out",
        str(out),
        "--permutations",
        "199",
        *extra,
    ]
    return main(argv)


def test_group_stats_command_writes_tables_and_manifest(runs, tmp_path, capsys):
    out = tmp_path / "stats"
    assert _stats_cli(runs, out, "--group-names", "ctrl,pat") == 0
    names = ["paper_step_tests", "paper_index_tests", "seed_tests", "subject_tests", "subject_maxt_tests"]
    names += ["subject_cv_test"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{n}.{e}" for n in names for e in ("tsv", "parquet")] + ["manifest.json"]
    )
    for n in names:
        t, pq = pd.read_csv(out / f"{n}.tsv", sep="\t"), pd.read_parquet(out / f"{n}.parquet")
        assert len(t) == len(pq) > 0 and set(pq["name_a"]) == {"ctrl"}
    man = json.loads((out / "manifest.json").read_text())
    assert {Path(o["path"]).name for o in man["outputs"]} == {f"{n}.{e}" for n in names for e in ("tsv", "parquet")}
    for o in man["outputs"]:
        assert sha256_file(o["path"]) == o["sha256"]
    ins = {Path(i["path"]).name for i in man["inputs"]}
    assert {"spectra.parquet", "subject_spectra.parquet", "subjects.tsv", "run.json"} <= ins
    assert man["params"]["group_sizes"] == {"0": 12, "1": 12} and man["params"]["permutations"] == 199
    seed = pd.read_parquet(out / "seed_tests.parquet")
    assert (seed["normalisation"] == "group_size").all()


def test_group_stats_is_all_or_nothing(runs, tmp_path, monkeypatch, capsys):
    out = tmp_path / "stats"
    calls = {"n": 0}
    real = pd.DataFrame.to_parquet

    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(self, *a, **k)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", flaky)
    assert _stats_cli(runs, out) == 2  # the CLI's one error path: one line, exit 2
    assert "disk full" in capsys.readouterr().err
    assert list(out.iterdir()) == []  # no table, no manifest, no temporary


def test_group_stats_bad_inputs_are_one_line_errors(runs, tmp_path, capsys):
    bad = tmp_path / "spectra.parquet"
    bad.write_text("not parquet")
    assert main(["group-stats", "--spectra", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(bad) in err
    d = runs["dirs"][0]
    sub = tmp_path / "lonely"
    sub.mkdir()
    (sub / "subject_spectra.parquet").write_bytes((d / "subject_spectra.parquet").read_bytes())
    assert (
        main(
            [
                "group-stats",
                "--spectra",
                str(d / "spectra.parquet"),
                "--subject-spectra",
                str(sub / "subject_spectra.parquet"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "subjects.tsv" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


def test_subjects_table_with_group_ids_or_unknown_names(runs, tmp_path, capsys):
    d = runs["dirs"][0]
    sub = pd.read_csv(d / "subjects.tsv", sep="\t")
    by_name = _subject_groups(d)
    ids = sub.assign(group=sub["group"].map({"HC": 0, "SZ": 1}))
    ids.to_csv(tmp_path / "ids.tsv", sep="\t", index=False)
    got = subject_group_ids(read_subjects(tmp_path / "ids.tsv"), {}, tmp_path / "ids.tsv")
    pd.testing.assert_series_equal(got, by_name)
    argv = [
        "group-stats",
        "--spectra",
        str(d / "spectra.parquet"),
        "--subject-spectra",
        str(d / "subject_spectra.parquet"),
        "--out",
        str(tmp_path / "o"),
        "--permutations",
        "0",
    ]
    assert main([*argv, "--subjects", str(tmp_path / "ids.tsv")]) == 0
    capsys.readouterr()
    sub.assign(group=sub["group"].replace({"SZ": "patient"})).to_csv(tmp_path / "odd.tsv", sep="\t", index=False)
    assert main([*argv, "--subjects", str(tmp_path / "odd.tsv"), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "odd.tsv" in err and "patient" in err and err.count("\n") == 1


def test_group_stats_adjusts_for_covariates_and_names_a_missing_one(runs, tmp_path, capsys):
    d = runs["dirs"][0]
    sub = pd.read_csv(d / "subjects.tsv", sep="\t")
    rng = np.random.default_rng(0)
    sub["age"] = rng.integers(20, 60, len(sub))
    sub["sex"] = rng.choice(["F", "M"], len(sub))
    sub.to_csv(tmp_path / "cov.tsv", sep="\t", index=False)
    argv = [
        "group-stats",
        "--spectra",
        str(d / "spectra.parquet"),
        "--subject-spectra",
        str(d / "subject_spectra.parquet"),
        "--permutations",
        "99",
    ]
    assert main([*argv, "--subjects", str(tmp_path / "cov.tsv"), "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "trained to classify" in err and "not valid inference" in err  # these runs classify the groups
    man = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert man["params"]["covariates"] == ["age", "sex"] and man["params"]["subject_tests_valid"] is False
    mt = pd.read_parquet(tmp_path / "o" / "subject_maxt_tests.parquet")
    assert (mt["covariates"] == "age,sex").all() and mt["statistic"].str.contains("Freedman").all()
    assert not mt["valid_inference"].any()
    st_ = pd.read_parquet(tmp_path / "o" / "subject_tests.parquet")
    assert st_["normalisation"].str.startswith("covariates: age,sex").all()
    assert main([*argv, "--subjects", str(tmp_path / "cov.tsv"), "--no-covariates", "--out", str(tmp_path / "o2")]) == 0
    assert json.loads((tmp_path / "o2" / "manifest.json").read_text())["params"]["covariates"] == []
    capsys.readouterr()
    sub.loc[3, "age"] = np.nan
    sub.to_csv(tmp_path / "missing.tsv", sep="\t", index=False)
    assert main([*argv, "--subjects", str(tmp_path / "missing.tsv"), "--out", str(tmp_path / "o3")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"subject {sub.loc[3, 'subject_id']}: covariate 'age' is missing" in err
    assert "missing.tsv" in err and not (tmp_path / "o3").exists()
    assert (
        main([*argv, "--subjects", str(tmp_path / "cov.tsv"), "--covariates", "motion", "--out", str(tmp_path / "o4")])
        == 2
    )
    assert "no covariate column(s) ['motion']" in capsys.readouterr().err


def test_subject_tests_of_an_autoencoder_are_valid_inference(tmp_path):
    ds = make_dataset(tmp_path / "d" / "data.npz", n=(16, 16), effect=1.0)
    run = make_run(tmp_path / "ae", ds, seed=0, task="autoencode")
    argv = ["group-stats", "--spectra", str(run / "spectra.parquet"), "--subject-spectra"]
    assert (
        main([*argv, str(run / "subject_spectra.parquet"), "--out", str(tmp_path / "o"), "--permutations", "199"]) == 0
    )
    mt = pd.read_parquet(tmp_path / "o" / "subject_maxt_tests.parquet")
    assert mt["valid_inference"].all() and mt["p_global"].iloc[0] < 0.05  # group 1's inputs are twice as large
    cv = pd.read_parquet(tmp_path / "o" / "subject_cv_test.parquet")
    assert cv["balanced_accuracy"].iloc[0] > 0.7 and cv["p_perm"].iloc[0] < 0.05


def test_subject_tests_use_the_training_split_only(runs, tmp_path):
    d = runs["dirs"][0]
    sub = pd.read_csv(d / "subjects.tsv", sep="\t")
    sub["split"] = np.where(np.arange(len(sub)) % 4 == 0, "test", "train")  # 6 of 24 held out
    sub.to_csv(tmp_path / "split.tsv", sep="\t", index=False)
    argv = ["group-stats", "--spectra", str(d / "spectra.parquet"), "--subject-spectra"]
    argv += [str(d / "subject_spectra.parquet"), "--subjects", str(tmp_path / "split.tsv"), "--permutations", "9"]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 0
    man = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert man["params"]["subjects_tested"] == "train split" and man["params"]["covariates"] == []
    mt = pd.read_parquet(tmp_path / "o" / "subject_maxt_tests.parquet")
    assert (mt["n_a"] + mt["n_b"] == 18).all()


def test_subject_spectra_of_several_seeds_are_averaged_per_subject(tmp_path):
    ds = make_dataset(tmp_path / "d" / "data.npz", n=(14, 14), effect=0.5)
    runs = [make_run(tmp_path / f"ae{s}", ds, seed=s, task="autoencode") for s in range(2)]
    one = subject_maxt_tests(
        pd.read_parquet(runs[0] / "subject_spectra.parquet"), _subject_groups(runs[0]), n_resamples=9
    )
    both = subject_maxt_tests(
        [pd.read_parquet(r / "subject_spectra.parquet") for r in runs], _subject_groups(runs[0]), n_resamples=9
    )
    assert set(one["family"]) == {"subject_maxt"} and set(both["family"]) == {"subject_maxt_seedavg"}
    assert (both["n_seeds"] == 2).all()
    frames = [pd.read_parquet(r / "subject_spectra.parquet") for r in runs]
    means = [
        np.log(f[(f.step == 2) & (f.key == "layers.0.weight") & (f.group == 3)].value.sum()) for f in frames
    ]  # subject 3's log nuclear norm in each seed's network
    W, _ = subject_features(frames, _subject_groups(runs[0]))
    assert W.loc[3, ("log_nuclear", "layers.0.weight", 2)] == pytest.approx(np.mean(means))
    argv = ["group-stats", "--spectra", str(runs[0] / "spectra.parquet"), "--permutations", "9"]
    argv += ["--subject-spectra", *[str(r / "subject_spectra.parquet") for r in runs], "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    t = pd.read_parquet(tmp_path / "o" / "subject_maxt_tests.parquet")
    assert set(t["family"]) == {"subject_maxt_seedavg"}
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["params"]["subject_spectra_seeds"] == 2
