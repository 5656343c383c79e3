"""Covariates from the phenotype for the final subjects, and their round trip in the .npz."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from cohort_files import IDS, assert_fails, edit_block, run_cli, write_cohort

from autospec.data.dataset import Dataset, load_dataset, save_dataset

COVS = [
    {"column": "Current Age", "type": "numeric"},
    {"column": "Gender", "type": "categorical"},
    {"column": "Handedness", "type": "categorical", "name": "hand"},
]


def _pheno_rows(root):
    lines = (root / "phenotype.csv").read_text().splitlines()
    return {ln.split(",")[0]: ln.split(",") for ln in lines[1:]}


def test_covariates_in_dataset_and_manifest(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c", covariates=COVS, exclude=[IDS[1]])
    out = tmp_path / "out" / "X.npz"
    rc, err = run_cli(capsys, cfg, "timecourses", out)
    assert rc == 0, err
    ds = load_dataset(out)
    rows = _pheno_rows(tmp_path / "c")
    kept = [s for s in IDS if s != IDS[1]]
    assert list(ds.subject_ids) == kept and list(ds.covariates) == ["Current Age", "Gender", "hand"]
    assert ds.covariates["Current Age"].dtype == np.float64
    np.testing.assert_array_equal(ds.covariates["Current Age"], [float(rows[s][1]) for s in kept])
    assert ds.covariates["Gender"].dtype.kind == "U" and list(ds.covariates["Gender"]) == [rows[s][2] for s in kept]
    assert ds.meta["covariates"][2] == {"name": "hand", "column": "Handedness", "type": "categorical"}
    assert ds.subject_table()["hand"] == ["Right"] * 5
    m = json.loads((tmp_path / "out" / "X.npz.manifest.json").read_text())
    assert m["covariates"]["Gender"] == {s: rows[s][2] for s in kept}
    with zipfile.ZipFile(out) as z:  # plain arrays, nothing pickled
        assert {"covariate_names.npy", "covariate_0.npy", "covariate_2.npy"} <= set(z.namelist())
    with np.load(out, allow_pickle=False) as z:
        assert z["covariate_1"].dtype.kind == "U"


@pytest.mark.parametrize(
    "cell, covs, needles",
    [
        ("", COVS[:1], ["is empty"]),
        ("n/a", COVS[:1], ["is empty", "'n/a'"]),
        ("forty", COVS[:1], ["non-numeric value 'forty'"]),
        ("inf", COVS[:1], ["non-numeric value 'inf'"]),
    ],
)
def test_bad_covariate_values(tmp_path, capsys, cell, covs, needles):
    cfg = write_cohort(tmp_path / "c", covariates=covs)
    p = tmp_path / "c" / "phenotype.csv"
    lines = p.read_text().splitlines()
    f = lines[3].split(",")
    f[1] = cell
    lines[3] = ",".join(f)
    p.write_text("\n".join(lines) + "\n")
    assert_fails(capsys, cfg, "timecourses", f"subject {IDS[2]}", "'Current Age'", str(p), *needles)


def test_covariate_column_missing_and_names_unique(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c", covariates=[{"column": "Site", "type": "categorical"}])
    assert_fails(capsys, cfg, "timecourses", "covariate column 'Site' not found", "phenotype.csv")
    edit_block(cfg, covariates=[{"column": "Gender", "type": "categorical"}, {"column": "Gender", "type": "numeric"}])
    assert_fails(capsys, cfg, "timecourses", "field covariates[1]", "used twice")
    edit_block(cfg, covariates=[{"column": "Gender", "type": "ordinal"}])
    assert_fails(capsys, cfg, "timecourses", "field covariates[0].type")


def test_dataset_round_trip_and_old_files(tmp_path):
    base = dict(  # noqa: C408
        X=np.zeros((3, 2)),
        y=[0, 1, 0],
        groups=[0, 1, 1],
        subject_ids=["a", "b", "c"],
        class_names=["x", "y"],
        group_names=["g", "h"],
        meta={"kind": "volumes"},
    )
    ds = Dataset(**base, covariates={"age": [30, 41.5, 22], "site": ["s1", "s2", "s1"]})
    save_dataset(tmp_path / "d.npz", ds)
    back = load_dataset(tmp_path / "d.npz")
    assert back.meta == ds.meta and list(back.covariates) == ["age", "site"]
    np.testing.assert_array_equal(back.covariates["age"], [30.0, 41.5, 22.0])
    assert back.covariates["age"].dtype == np.float64 and back.covariates["site"].tolist() == ["s1", "s2", "s1"]
    save_dataset(tmp_path / "old.npz", Dataset(**base))  # no covariates: an older file
    assert load_dataset(tmp_path / "old.npz").covariates is None
    with pytest.raises(Exception, match="covariate 'age' has shape"):
        Dataset(**base, covariates={"age": [1.0, 2.0]})
    with pytest.raises(Exception, match="not finite for subject b"):
        Dataset(**base, covariates={"age": [1.0, np.nan, 2.0]})
