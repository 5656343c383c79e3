"""Phenotype tables (COBRE CSV, BIDS participants.tsv) and group assignment."""

from __future__ import annotations

import logging

import pytest
from cohort_files import IDS, assert_fails, edit_block, write_cohort

from autospec.data.phenotype import assign_groups, read_phenotype
from autospec.errors import InputError

COBRE = """\
,Current Age,Gender,Handedness,Subject Type,Diagnosis
A00000300,20,Female,Right,Control,None
A00000368,55,Male,Right,Patient,295.3
A00000456,35,Male,Left,Patient,295.30
A00000838,26,Female,Right,Control,None
A00001181,41,Male,Right,Disenrolled,Disenrolled
A00001243,28,Male,Both,Control,None
A00001251,40,Female,Right,Patient,295.10
"""
DXSEX = {
    "by": [
        {"column": "Subject Type", "map": {"Patient": "SZ", "Control": "HC"}},
        {"column": "Gender", "map": {"Male": "M", "Female": "F"}},
    ]
}


@pytest.fixture
def cobre(tmp_path):
    f = tmp_path / "phenotype.csv"
    f.write_text(COBRE)
    return f


def test_read_cobre(cobre, caplog):
    caplog.set_level(logging.INFO, logger="autospec")
    df = read_phenotype(cobre)
    assert list(df.index) == [
        "A00000300",
        "A00000368",
        "A00000456",
        "A00000838",
        "A00001243",
        "A00001251",
    ]
    assert df.attrs["n_disenrolled"] == 1 and df.attrs["disenrolled"] == ["A00001181"]
    assert "A00001181" in caplog.text and "Disenrolled" in caplog.text
    assert df.loc["A00000300", "Diagnosis"] == "None"  # text, not NaN
    assert df.loc["A00000368", "Current Age"] == "55"
    assert "Subject Type" in df.columns and all(isinstance(i, str) for i in df.index)


def test_read_bids(tmp_path):
    f = tmp_path / "participants.tsv"
    f.write_text("participant_id\tage\tsex\tgroup\nsub-01\t30\tM\tpatient\nsub-02\tn/a\tF\tcontrol\n")
    df = read_phenotype(f, format="bids")
    assert list(df.index) == ["sub-01", "sub-02"] and df.loc["sub-02", "age"] == "n/a"
    df = read_phenotype(f, format="bids", id_column="sex")
    assert list(df.index) == ["M", "F"]
    with pytest.raises(InputError, match="ID column 'subject' not found"):
        read_phenotype(f, format="bids", id_column="subject")


@pytest.mark.parametrize(
    "text, needle",
    [
        (
            COBRE + "A00000456,36,Male,Left,Patient,295.30\n",
            "subject A00000456 appears more than once",
        ),
        (COBRE + ",36,Male,Left,Patient,295.30\n", "line 9 has an empty subject ID"),
        ("just one column\nx\n", "1 column"),
    ],
)
def test_bad_tables(tmp_path, text, needle):
    f = tmp_path / "p.csv"
    f.write_text(text)
    with pytest.raises(InputError) as e:
        read_phenotype(f)
    assert needle in str(e.value) and str(f) in str(e.value)
    with pytest.raises(InputError, match="not found"):
        read_phenotype(tmp_path / "missing.csv")


def test_groups_diagnosis_by_sex(cobre):
    g = assign_groups(read_phenotype(cobre), DXSEX, min_size=1)
    assert g.to_dict() == {
        "A00000300": "HC-F",
        "A00000368": "SZ-M",
        "A00000456": "SZ-M",
        "A00000838": "HC-F",
        "A00001243": "HC-M",
        "A00001251": "SZ-F",
    }
    # HC-M and SZ-F have one subject each -> error naming a group
    with pytest.raises(InputError, match="group 'HC-M' has 1 subject"):
        assign_groups(read_phenotype(cobre), DXSEX)


def test_groups_keep_and_exclude(cobre):
    df = read_phenotype(cobre)
    g = assign_groups(df, {**DXSEX, "keep": ["SZ-M", "HC-F"]})
    assert g.to_dict() == {
        "A00000300": "HC-F",
        "A00000368": "SZ-M",
        "A00000456": "SZ-M",
        "A00000838": "HC-F",
    }
    with pytest.raises(InputError, match=r"groups.keep: 'SZ-X' is not a possible group"):
        assign_groups(df, {**DXSEX, "keep": ["SZ-X"]})
    one = {"by": [{"column": "Subject Type", "map": {"Patient": "SZ", "Control": "HC"}}]}
    g = assign_groups(df, one, exclude=["A00000300"])
    assert "A00000300" not in g.index and len(g) == 5


def test_unknown_value_and_numeric_keys(cobre):
    df = read_phenotype(cobre)
    dx = {"by": [{"column": "Diagnosis", "map": {295.3: "SZ", "None": "HC"}}]}
    with pytest.raises(InputError) as e:
        assign_groups(df, dx)
    msg = str(e.value)
    assert "A00001251" in msg and "'Diagnosis'" in msg and "'295.10'" in msg
    # numeric key 295.3 matches both '295.3' and '295.30'; the excluded subject is not checked
    g = assign_groups(df, dx, exclude=["A00001251"])
    assert g["A00000368"] == g["A00000456"] == "SZ"
    with pytest.raises(InputError, match="group column 'Sex' not found"):
        assign_groups(df, {"by": [{"column": "Sex", "map": {"M": "M"}}]})


# ---------------------------------------------------------------- through the CLI
def test_cli_duplicate_ids(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c")
    p = tmp_path / "c" / "phenotype.csv"
    p.write_text(p.read_text() + f"{IDS[2]},30,Male,Right,Patient,295.30\n")
    assert_fails(capsys, cfg, "timecourses", IDS[2], "more than once", p)


def test_cli_unknown_group_value(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c")
    p = tmp_path / "c" / "phenotype.csv"
    p.write_text(p.read_text().replace("Male,Right,Patient", "Male,Right,Relative", 1))
    assert_fails(capsys, cfg, "timecourses", IDS[0], "'Subject Type'", "'Relative'")


def test_cli_excluded_unknown_value_passes(tmp_path, capsys):
    from cohort_files import run_cli

    cfg = write_cohort(tmp_path / "c")
    p = tmp_path / "c" / "phenotype.csv"
    p.write_text(p.read_text().replace("Male,Right,Patient", "Male,Right,Relative", 1))
    edit_block(cfg, exclude=[IDS[0]])
    rc, err = run_cli(capsys, cfg, "timecourses", tmp_path / "out" / "X.npz")
    assert rc == 0, err


def test_cli_group_too_small(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c")
    edit_block(cfg, groups=DXSEX)  # SZ: M, F, M; HC: M, F, F -> HC-M and SZ-F have 1 subject
    assert_fails(capsys, cfg, "timecourses", "group 'HC-M' has 1 subject")


@pytest.mark.parametrize("fmt, sep, id_col", [("cobre", ",", ""), ("bids", "\t", "participant_id")])
def test_bom_and_crlf(tmp_path, fmt, sep, id_col):
    """Spreadsheet exports: a UTF-8 BOM before the header and CRLF line ends."""
    p = tmp_path / "p.txt"
    rows = [[id_col, "group"], ["s1", "a"], ["s2", "b"]]
    p.write_bytes(("\ufeff" + "\r\n".join(sep.join(r) for r in rows) + "\r\n").encode())
    df = read_phenotype(p, fmt)
    assert list(df.index) == ["s1", "s2"] and list(df.columns) == ["group"] and df.loc["s2", "group"] == "b"
