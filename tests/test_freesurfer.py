"""FreeSurfer aseg.stats / asegstats2table readers, on the real file and broken copies of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cohort_files import IDS, assert_fails, write_cohort

from autospec.data.freesurfer import (
    read_aseg_stats,
    read_asegstats2table,
    volumes_table,
)
from autospec.errors import InputError


@pytest.fixture(scope="module")
def real(shared_data) -> Path:
    found = sorted(shared_data.glob("freesurfer/**/aseg.stats"))
    if not found:
        pytest.skip("no real aseg.stats under shared data")
    return found[0]


def _edit(real: Path, dest: Path, keep=lambda ln: True, sub=lambda ln: ln) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("".join(sub(ln) for ln in real.read_text().splitlines(True) if keep(ln)))
    return dest


def test_real_file(real):
    a = read_aseg_stats(real)
    assert a.measures["EstimatedTotalIntraCranialVol"] == (1420434.160521, "mm^3")
    assert a.measures["eTIV"] == a.measures["EstimatedTotalIntraCranialVol"]
    assert a.etiv == 1420434.160521
    assert a.measures["BrainSegVol"] == (1169408.0, "mm^3")
    assert a.measures["lhSurfaceHoles"] == (24.0, "unitless")
    assert list(a.table.columns) == [
        "Index",
        "SegId",
        "NVoxels",
        "Volume_mm3",
        "StructName",
        "normMean",
        "normStdDev",
        "normMin",
        "normMax",
        "normRange",
    ]
    assert len(a.table) == 45 and a.table["SegId"].iloc[-1] == 255
    assert a.volumes["Left-Hippocampus"] == 4333.5 and a.volumes["CC_Anterior"] == 1124.7
    assert a.volumes.index[0] == "Left-Lateral-Ventricle" and a.volumes.dtype == np.float64


def test_freesurfer_53_names_and_legacy_icv(real, tmp_path):
    f = _edit(
        real,
        tmp_path / "aseg.stats",
        keep=lambda ln: "EstimatedTotalIntraCranialVol" not in ln,
        sub=lambda ln: ln.replace("Left-Thalamus ", "Left-Thalamus-Proper ").replace(
            "# Measure Mask,",
            "# Measure IntraCranialVol, ICV, Intracranial Volume, 1500000.0, mm^3\n# Measure Mask,",
        ),
    )
    a = read_aseg_stats(f)
    assert "Left-Thalamus" in a.volumes and "Left-Thalamus-Proper" not in a.volumes
    assert a.table["StructName"].iloc[4] == "Left-Thalamus"
    assert a.etiv == 1500000.0 and a.measures["EstimatedTotalIntraCranialVol"][0] == 1500000.0


def test_measure_description_with_commas(real, tmp_path):
    f = _edit(
        real,
        tmp_path / "aseg.stats",
        sub=lambda ln: ln.replace("Mask Volume,", "Mask Volume, incl. ventricles, CSF,"),
    )
    assert read_aseg_stats(f).measures["MaskVol"] == (1686052.0, "mm^3")


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found") as e:
        read_aseg_stats(tmp_path / "nope" / "aseg.stats")
    assert str(tmp_path / "nope" / "aseg.stats") in str(e.value)


@pytest.mark.parametrize(
    "case, keep, sub, needle",
    [
        ("no_colheaders", lambda ln: "ColHeaders" not in ln, None, "ColHeaders"),
        ("no_etiv", lambda ln: "eTIV" not in ln, None, "no eTIV"),
        (
            "wrong_columns",
            None,
            lambda ln: ln.replace("Left-Putamen ", "Left Putamen "),
            "row has 11 columns",
        ),
        ("non_numeric", None, lambda ln: ln.replace("4333.5", "43x3.5"), "non-numeric"),
        ("nan_volume", None, lambda ln: ln.replace("4333.5", "nan"), "Left-Hippocampus"),
        (
            "duplicate",
            None,
            lambda ln: ln.replace("Right-Hippocampus", "Left-Hippocampus"),
            "listed twice",
        ),
        ("bad_measure", None, lambda ln: ln.replace("1420434.160521", "big"), "non-numeric value"),
    ],
)
def test_bad_files(real, tmp_path, *, case, keep, sub, needle):
    f = _edit(real, tmp_path / case / "aseg.stats", keep or (lambda ln: True), sub or (lambda ln: ln))
    with pytest.raises(InputError) as e:
        read_aseg_stats(f)
    msg = str(e.value)
    assert str(f) in msg and needle in msg and "\n" not in msg


def test_asegstats2table(tmp_path):
    f = tmp_path / "aseg_table.txt"
    f.write_text(
        "Measure:volume\tLeft-Thalamus-Proper\tLeft-Hippocampus\tEstimatedTotalIntraCranialVol\n"
        "sub-01\t8000.5\t4300.0\t1500000.0\n"
        "sub-02\t7900.0\t4200.25\t1450000.0\n"
    )
    t = read_asegstats2table(f)
    assert list(t.index) == ["sub-01", "sub-02"]
    assert list(t.columns) == ["Left-Thalamus", "Left-Hippocampus", "EstimatedTotalIntraCranialVol"]
    assert t.loc["sub-02", "Left-Hippocampus"] == 4200.25 and t.dtypes.unique().tolist() == [float]


@pytest.mark.parametrize(
    "text, needle",
    [
        ("Subject\tA\nx\t1\n", "Measure:volume"),
        ("Measure:volume\tA\nx\t1\nx\t2\n", "subject x listed twice"),
        ("Measure:volume\tA\nx\t1\ny\tabc\n", "subject y: column A"),
    ],
)
def test_asegstats2table_bad(tmp_path, text, needle):
    f = tmp_path / "t.txt"
    f.write_text(text)
    with pytest.raises(InputError) as e:
        read_asegstats2table(f)
    assert needle in str(e.value) and str(f) in str(e.value)


def test_volumes_table(real, tmp_path):
    sdir = tmp_path / "subjects"
    _edit(real, sdir / "s1" / "stats" / "aseg.stats")
    _edit(
        real,
        sdir / "s2" / "stats" / "aseg.stats",
        keep=lambda ln: "CC_Anterior" not in ln,
        sub=lambda ln: ln.replace("4333.5", "4000.0"),
    )
    vol, etiv = volumes_table(sdir, ["s2", "s1"])
    assert list(vol.index) == ["s2", "s1"] and vol.shape == (2, 44)  # CC_Anterior not in s2
    assert vol.loc["s2", "Left-Hippocampus"] == 4000.0 and etiv["s1"] == 1420434.160521

    vol, _ = volumes_table(sdir, ["s1"], structures=["Left-Thalamus-Proper", "CSF"])
    assert list(vol.columns) == ["Left-Thalamus", "CSF"]

    with pytest.raises(InputError, match=r"subject s2: .* no structure CC_Anterior"):
        volumes_table(sdir, ["s1", "s2"], structures=["CC_Anterior"])
    with pytest.raises(InputError) as e:
        volumes_table(sdir, ["s1", "s9"])
    assert "subject s9" in str(e.value) and str(sdir / "s9") in str(e.value)


# ---------------------------------------------------------------- through the CLI
def test_aseg_without_etiv_via_cli(tmp_path, real, capsys):
    cfg = write_cohort(tmp_path / "c", real)
    f = tmp_path / "c" / "freesurfer" / IDS[2] / "stats" / "aseg.stats"
    f.write_text("".join(ln for ln in f.read_text().splitlines(True) if "eTIV" not in ln))
    assert_fails(capsys, cfg, "volumes", f, "no eTIV")


def test_aseg_without_colheaders_via_cli(tmp_path, real, capsys):
    cfg = write_cohort(tmp_path / "c", real)
    f = tmp_path / "c" / "freesurfer" / IDS[4] / "stats" / "aseg.stats"
    f.write_text("".join(ln for ln in f.read_text().splitlines(True) if "ColHeaders" not in ln))
    assert_fails(capsys, cfg, "volumes", f, "ColHeaders")


# ------------------------------------------------- asegstats2table cohorts, SUBJECTS_DIR
def _table_from(sdir: Path, ids, path: Path, sep: str = "\t") -> Path:
    """An asegstats2table-shaped table built from the subjects' aseg.stats (independent parse)."""
    rows, header = [], None
    for sid in ids:
        lines = (sdir / sid / "stats" / "aseg.stats").read_text().splitlines()
        cols = next(ln for ln in lines if ln.startswith("# ColHeaders")).split()[2:]
        body = [ln.split() for ln in lines if ln.strip() and not ln.startswith("#")]
        names = [b[cols.index("StructName")] for b in body]
        vols = [b[cols.index("Volume_mm3")] for b in body]
        etiv = next(ln for ln in lines if "EstimatedTotalIntraCranialVol" in ln).split(",")[3].strip()
        header = header or ["Measure:volume", *names, "BrainSegVol", "EstimatedTotalIntraCranialVol"]
        rows.append([sid, *vols, "1100000.0", etiv])
    path.write_text("\r\n".join(sep.join(r) for r in [header, *rows]) + "\r\n")  # CRLF too
    return path


@pytest.mark.parametrize("sep, name", [("\t", "aseg_volume.txt"), (",", "aseg_volume.csv")])
def test_asegstats2table_cohort_matches_subjects_dir(tmp_path, real, capsys, sep, name):
    from cohort_files import edit_block, run_cli

    from autospec.data.dataset import load_dataset

    cfg = write_cohort(tmp_path / "c", real)
    rc, err = run_cli(capsys, cfg, "volumes", tmp_path / "out" / "dir.npz")
    assert rc == 0, err
    table = _table_from(tmp_path / "c" / "freesurfer", IDS, tmp_path / "c" / name, sep)
    edit_block(cfg, freesurfer={"table": name})
    rc, err = run_cli(capsys, cfg, "volumes", tmp_path / "out" / "table.npz")
    assert rc == 0, err
    a, b = load_dataset(tmp_path / "out" / "dir.npz"), load_dataset(tmp_path / "out" / "table.npz")
    assert list(b.subject_ids) == IDS and b.meta["feature_names"] == a.meta["feature_names"]
    assert "BrainSegVol" not in b.meta["feature_names"]  # a global measure, not a structure
    np.testing.assert_allclose(b.X, a.X, rtol=1e-6)
    assert b.meta["source"] == str(table)


def test_freesurfer_block_needs_one_source(tmp_path, capsys):
    from cohort_files import edit_block

    cfg = write_cohort(tmp_path / "c")
    edit_block(cfg, freesurfer={"subjects_dir": "fs", "table": "t.txt"})
    assert_fails(capsys, cfg, "volumes", "field freesurfer", "exactly one of subjects_dir")


def test_longitudinal_dirs_skipped_or_selected(tmp_path, real):
    import shutil

    from autospec.data.freesurfer import subjects_dir_entries

    sdir = tmp_path / "fs"
    for d in ("s1", "s2", "base1", "s1_tp1.long.base1", "s1_tp2.long.base1", "fsaverage"):
        _edit(real, sdir / d / "stats" / "aseg.stats")
    (sdir / "notes.txt").write_text("x")
    assert sorted(subjects_dir_entries(sdir)) == ["s1", "s2"]  # base template and .long. skipped
    assert sorted(subjects_dir_entries(sdir, "only")) == ["s1_tp1", "s1_tp2"]
    shutil.rmtree(sdir / "s1_tp2.long.base1")
    assert sorted(subjects_dir_entries(sdir, "only")) == ["s1_tp1"]


def test_missing_structure_warns_with_counts_or_errors(tmp_path, real, capsys, caplog):
    from cohort_files import edit_block

    from autospec.data.cohort import load_cohort_config
    from autospec.data.preprocess import preprocess_volumes

    cfg = write_cohort(tmp_path / "c", real)
    f = tmp_path / "c" / "freesurfer" / IDS[1] / "stats" / "aseg.stats"
    f.write_text("".join(ln for ln in f.read_text().splitlines(True) if "CC_Anterior" not in ln))
    caplog.set_level("WARNING", logger="autospec")
    ds = preprocess_volumes(load_cohort_config(cfg))
    assert "CC_Anterior" not in ds.meta["feature_names"] and ds.X.shape == (6, 44)
    warning = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("CC_Anterior missing in 1 of 6 subjects" in w and IDS[1] in w for w in warning), warning
    edit_block(cfg, freesurfer={"subjects_dir": "freesurfer", "missing_structures": "error"})
    assert_fails(capsys, cfg, "volumes", "CC_Anterior missing in 1 of 6", IDS[1], "missing_structures: error")


def test_unreadable_subjects_dir(tmp_path, capsys, monkeypatch):
    import os

    from cohort_files import edit_block

    cfg = write_cohort(tmp_path / "c")
    edit_block(cfg, freesurfer={"subjects_dir": "phenotype.csv"})
    assert_fails(capsys, cfg, "volumes", "freesurfer.subjects_dir", "not a directory")
    locked = tmp_path / "c" / "locked"
    locked.mkdir()
    real_listdir = os.listdir

    def denied(path):  # what a mode-000 directory gives a non-root user (tests may run as root)
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", denied)
    edit_block(cfg, freesurfer={"subjects_dir": "locked"})
    assert_fails(capsys, cfg, "volumes", "cannot list", str(locked), "Permission denied")
