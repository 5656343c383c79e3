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
def test_bad_files(real, tmp_path, case, keep, sub, needle):
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

    with pytest.raises(InputError, match="subject s2: .* no structure CC_Anterior"):
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
