"""The synthetic demo cohort: contract layout, real formats, determinism, planted effect."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from autospec import cli
from autospec.data.demo import cohort as synthetic
from autospec.data.demo import gift_output
from autospec.data.demo import ica_signals as synthetic_gift
from autospec.data.matfile import load_mat
from autospec.data.neuromark import domain_components
from autospec.errors import InputError

EXPECTED_COLS = [
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
ALWAYS_ZERO = {
    "5th-Ventricle",
    "Left-WM-hypointensities",
    "Right-WM-hypointensities",
    "non-WM-hypointensities",
    "Left-non-WM-hypointensities",
    "Right-non-WM-hypointensities",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("cohorts")
    return {
        "a": synthetic.make_demo_cohort(base / "a", seed=0, effect=2.0, small=True),
        "a2": synthetic.make_demo_cohort(base / "a2", seed=0, effect=2.0, small=True),
        "null": synthetic.make_demo_cohort(base / "null", seed=0, effect=0.0, small=True),
        "b": synthetic.make_demo_cohort(base / "b", seed=1, effect=2.0, small=True, n_sz=3, n_hc=3),
    }


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def hashes(root: Path) -> dict[str, str]:
    return {str(p): sha(root / p) for p in synthetic.cohort_files(root)}


def subjects(root: Path) -> list[str]:
    """GIFT's subject order, read independently of autospec's GIFT reader: the BIDS sub-<ID>
    directory of each data set's first input file in the v7.3 parameter file (h5py only)."""
    import h5py

    with h5py.File(root / "gift" / "demo_ica_parameter_info.mat", "r") as f:
        refs = f["sesInfo"]["inputFiles"]["name"][()].ravel()
        rows = ["".join(map(chr, f[r][()].T[0])) for r in refs]
    return [re.search(r"/sub-([^/]+)/", r).group(1) for r in rows]


def phenotype(root: Path) -> list[dict[str, str]]:
    with open(root / "phenotype.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def group_of(root: Path) -> dict[str, str]:
    return {r[""]: r["Subject Type"] for r in phenotype(root)}


def parse_aseg(path: Path) -> tuple[dict[str, float], list[str], dict[str, float]]:
    """Independent minimal aseg.stats parser: measures (by short name), columns, volumes."""
    measures, cols, vols = {}, [], {}
    for line in path.read_text().splitlines():
        if line.startswith("# Measure "):
            f = [s.strip() for s in line[len("# Measure ") :].split(",")]
            measures[f[1]] = float(f[3])
        elif line.startswith("# ColHeaders"):
            cols = line.split()[2:]
        elif not line.startswith("#") and line.strip():
            f = line.split()
            assert len(f) == len(cols)
            vols[f[cols.index("StructName")]] = float(f[cols.index("Volume_mm3")])
    return measures, cols, vols


# --------------------------------------------------------------------------------- layout
def test_layout_matches_contract(built):
    root = built["a"]
    ids = subjects(root)
    assert len(ids) == 24 and all(re.fullmatch(r"A\d{8}", s) for s in ids)
    expected = {
        "phenotype.csv",
        "cohort.yaml",
        "planted_effect.json",
        "gift/demo_ica_parameter_info.mat",
        "gift/demoSubject.mat",
        "gift/demo_mean_component_ica_s_all_.nii",
        "gift/demo_mean_timecourses_ica_s_all_.nii",
    }
    for k, sid in enumerate(ids, start=1):
        expected |= {
            f"freesurfer/{sid}/stats/aseg.stats",
            f"gift/demo_sub{k:03d}_timecourses_ica_s1_.nii",
            f"gift/demo_sub{k:03d}_component_ica_s1_.nii",
        }
    assert {str(p) for p in synthetic.cohort_files(root)} == expected
    assert (root / "manifest.json").is_file()
    assert not list(root.parent.glob(".a.*"))  # no temp dir left beside it


def test_phenotype_cobre_style_with_disenrolled(built):
    root = built["a"]
    header = (root / "phenotype.csv").read_text().splitlines()[0]
    assert header == ",Current Age,Gender,Handedness,Subject Type,Diagnosis"
    rows = phenotype(root)
    dis = [r for r in rows if r["Subject Type"] == "Disenrolled"]
    enrolled = [r for r in rows if r["Subject Type"] != "Disenrolled"]
    assert len(dis) == 2 and len(enrolled) == 24
    assert all(v == "Disenrolled" for r in dis for k, v in r.items() if k != "")
    for r in dis:  # disenrolled subjects have no data at all
        assert r[""] not in subjects(root)
        assert not (root / "freesurfer" / r[""]).exists()
    assert [r[""] for r in enrolled] == subjects(root)
    assert sum(r["Subject Type"] == "Patient" for r in enrolled) == 12
    for r in enrolled:
        assert 18 <= int(r["Current Age"]) <= 65
        assert r["Gender"] in ("Male", "Female") and r["Handedness"] in ("Right", "Left", "Both")
        if r["Subject Type"] == "Patient":
            assert re.fullmatch(r"295\.\d0", r["Diagnosis"])
        else:
            assert r["Subject Type"] == "Control" and r["Diagnosis"] == "None"


def test_nifti_formats(built):
    root = built["a"]
    n = len(subjects(root))
    grid = synthetic_gift.make_grid(6.0)
    support = None
    for k in (1, n):
        tc = nib.load(root / "gift" / f"demo_sub{k:03d}_timecourses_ica_s1_.nii")
        # GIFT: the first functional volume's header, only dim changed to [T, C, 1]
        assert isinstance(tc, nib.Nifti1Image) and tc.shape == (150, 53, 1)
        assert tc.get_data_dtype() == np.float32
        assert tc.header.get_zooms() == (6.0, 6.0, 6.0)  # the voxel size, not the TR (2 s)
        np.testing.assert_allclose(tc.affine, grid.affine)
        assert tc.header.get_xyzt_units() == ("mm", "sec") and int(tc.header["sform_code"]) == 2
        x = np.asarray(tc.dataobj)[:, :, 0]
        assert np.isfinite(x).all() and x.std(axis=0).min() > 0
        maps = nib.load(root / "gift" / f"demo_sub{k:03d}_component_ica_s1_.nii")
        assert maps.shape == (27, 32, 26, 53) and maps.get_data_dtype() == np.float32
        np.testing.assert_allclose(maps.affine, grid.affine)
        assert np.diag(maps.affine)[:3].tolist() == [6.0, 6.0, 6.0]
        assert int(maps.header["sform_code"]) == 2  # SPM's "aligned", from the functional header
        nz = np.any(np.asarray(maps.dataobj) != 0, axis=-1)
        support = nz if support is None else support
        assert np.array_equal(nz, support)  # same brain mask for every subject
    assert 0.2 < support.mean() < 0.6  # a brain inside a box, zero outside
    assert not support[0].any() and not support[-1].any()
    # mean file = mean over subjects of the component maps
    total = sum(
        np.asarray(nib.load(p).dataobj, dtype=np.float64)
        for p in sorted((root / "gift").glob("demo_sub*_component_ica_s1_.nii"))
    )
    mean = nib.load(root / "gift" / "demo_mean_component_ica_s_all_.nii")
    np.testing.assert_allclose(np.asarray(mean.dataobj), total / n, atol=1e-5)


def test_gift_parameter_files(built):
    """sesInfo and Subject.mat as GIFT saves them (v7.3: MATLAB header, HDF5 at byte 512)."""
    root = built["a"]
    g = root / "gift"
    for name in ("demo_ica_parameter_info.mat", "demoSubject.mat"):
        head = (g / name).read_bytes()[:520]
        assert head.startswith(b"MATLAB 7.3 MAT-file") and head[124:128] == b"\x00\x02IM"
        assert head[512:520] == b"\x89HDF\r\n\x1a\n"
    ses = load_mat(g / "demo_ica_parameter_info.mat", ["sesInfo"])["sesInfo"]
    ids = subjects(root)
    assert int(ses["numOfSub"]) == len(ids) == 24 and int(ses["numOfSess"]) == 1
    assert float(ses["TR"]) == 2.0 and ses["userInput"]["prefix"] == "demo"
    first = ses["inputFiles"][0]["name"]
    assert len(first) == 150 and first[0].endswith(f"sub-{ids[0]}_task-rest_space-MNI152_desc-preproc_bold.nii,1")
    sub = load_mat(g / "demoSubject.mat", ["files", "numOfSub", "numOfSess", "modalityType"])
    assert sub["modalityType"] == "fMRI" and int(sub["numOfSub"]) == 24
    assert [f["name"] for f in sub["files"]] == [f["name"] for f in ses["inputFiles"]]
    mean_tc = nib.load(g / "demo_mean_timecourses_ica_s_all_.nii")
    assert mean_tc.shape == (150, 53, 1)


def test_timecourses_band_limited(built):
    root = built["a"]
    x = np.stack(
        [
            np.asarray(nib.load(p).dataobj)[:, :, 0]
            for p in sorted((root / "gift").glob("demo_sub*_timecourses_ica_s1_.nii"))
        ]
    )
    x = x - x.mean(axis=1, keepdims=True)
    power = (np.abs(np.fft.rfft(x, axis=1)) ** 2).mean(axis=(0, 2))
    f = np.fft.rfftfreq(150, d=2.0)
    band = (f >= 0.01) & (f <= 0.15)
    assert power[band].sum() / power[1:].sum() > 0.75  # 0.01-0.15 Hz dominates


def test_aseg_stats_format(built):
    root = built["a"]
    for sid in subjects(root)[:3]:
        path = root / "freesurfer" / sid / "stats" / "aseg.stats"
        text = path.read_text()
        assert "# Measure EstimatedTotalIntraCranialVol, eTIV, Estimated Total Intracranial Volume, " in text
        measures, cols, vols = parse_aseg(path)
        assert cols == EXPECTED_COLS
        assert 1.0e6 <= measures["eTIV"] <= 2.0e6
        assert measures["BrainSegVol-to-eTIV"] == pytest.approx(measures["BrainSegVol"] / measures["eTIV"], abs=1e-5)
        assert len(vols) == 45 and f"# NRows {len(vols)} " in text
        for name, v in vols.items():
            assert v == 0.0 if name in ALWAYS_ZERO else v > 0.0, name
        assert 2500 < vols["Left-Hippocampus"] < 7000
        assert vols["Left-Thalamus"] > vols["Left-Hippocampus"]
        assert "Timestamp" not in text and f"# subjectname {sid}" in text


# ---------------------------------------------------------------------------- determinism
def test_same_seed_byte_identical(built):
    ha, ha2 = hashes(built["a"]), hashes(built["a2"])
    # phenotype, cohort.yaml, planted_effect.json; 2 GIFT MAT-files, 2 mean images; 3 per subject
    assert ha == ha2 and len(ha) == 3 + 4 + 3 * 24
    ma = json.loads((built["a"] / "manifest.json").read_text())
    ma2 = json.loads((built["a2"] / "manifest.json").read_text())
    assert ma["outputs"] == ma2["outputs"]
    assert {r["path"]: r["sha256"] for r in ma["outputs"]} == ha  # manifest hashes every file
    assert ma["params"] == {
        "seed": 0,
        "effect": 2.0,
        "n_sz": 12,
        "n_hc": 12,
        "small": True,
        "grid_mm": 6.0,
        "prefix": "demo",
        "mat_version": "7.3",
    }


def test_different_seed_differs(built):
    ha, hb = hashes(built["a"]), hashes(built["b"])
    for name in (
        "phenotype.csv",
        "gift/demo_sub001_timecourses_ica_s1_.nii",
        "gift/demo_sub001_component_ica_s1_.nii",
        "planted_effect.json",
    ):
        assert ha[name] != hb[name], name
    assert ha["cohort.yaml"] == hb["cohort.yaml"]
    assert len(subjects(built["b"])) == 6


# ---------------------------------------------------------------------------- planted effect
def _etiv_norm_volumes(root: Path, names: list[str]) -> dict[str, np.ndarray]:
    g = group_of(root)
    out: dict[str, list[float]] = {"Patient": [], "Control": []}
    for sid in subjects(root):
        m, _, v = parse_aseg(root / "freesurfer" / sid / "stats" / "aseg.stats")
        out[g[sid]].append(sum(v[n] for n in names) / m["eTIV"])
    return {k: np.array(x) for k, x in out.items()}


def test_planted_volume_effect(built):
    hip = ["Left-Hippocampus", "Right-Hippocampus"]
    v = _etiv_norm_volumes(built["a"], hip)
    assert v["Patient"].mean() < 0.95 * v["Control"].mean()
    # same seed, effect 0 vs 2: controls are untouched, patients' planted structures x 0.9
    g = group_of(built["a"])
    for sid in subjects(built["a"]):
        pa = built["a"] / "freesurfer" / sid / "stats" / "aseg.stats"
        pn = built["null"] / "freesurfer" / sid / "stats" / "aseg.stats"
        if g[sid] == "Control":
            assert sha(pa) == sha(pn)
            continue
        (_, _, va), (_, _, vn) = parse_aseg(pa), parse_aseg(pn)
        for name in ("Left-Hippocampus", "Right-Thalamus"):
            assert va[name] == pytest.approx(0.9 * vn[name], abs=0.1)
        assert va["Left-Putamen"] == vn["Left-Putamen"]


def _within_domain_corr(root: Path, domain: str) -> dict[str, np.ndarray]:
    g = group_of(root)
    cols = [c - 1 for c in domain_components(domain)]
    out: dict[str, list[float]] = {"Patient": [], "Control": []}
    for k, sid in enumerate(subjects(root), start=1):
        tc = np.asarray(nib.load(root / "gift" / f"demo_sub{k:03d}_timecourses_ica_s1_.nii").dataobj)[:, :, 0]
        c = np.corrcoef(tc[:, cols].T)
        out[g[sid]].append(c[np.triu_indices(len(cols), 1)].mean())
    return {k: np.array(x) for k, x in out.items()}


def test_planted_coupling_effect_and_null(built):
    dm = _within_domain_corr(built["a"], "DM")
    assert dm["Patient"].mean() > dm["Control"].mean() + 0.3  # 0.25 -> 0.85 planted
    vi = _within_domain_corr(built["a"], "VI")  # not planted
    assert abs(vi["Patient"].mean() - vi["Control"].mean()) < 0.15
    dm0 = _within_domain_corr(built["null"], "DM")
    assert abs(dm0["Patient"].mean() - dm0["Control"].mean()) < 0.15


def test_planted_map_intensity(built):
    root, g = built["a"], group_of(built["a"])
    peaks: dict[str, list[np.ndarray]] = {"Patient": [], "Control": []}
    for k, sid in enumerate(subjects(root), start=1):
        m = np.asarray(nib.load(root / "gift" / f"demo_sub{k:03d}_component_ica_s1_.nii").dataobj)
        peaks[g[sid]].append(m.reshape(-1, 53).max(axis=0))
    ratio = np.mean(peaks["Patient"], axis=0) / np.mean(peaks["Control"], axis=0)
    planted = [c - 1 for c in synthetic.MAP_COMPONENTS]
    other = [c for c in range(53) if c not in planted]
    assert ratio[planted].mean() < 0.85  # x 0.7 planted at effect 2 (noise keeps peaks up)
    assert abs(ratio[other].mean() - 1.0) < 0.05


def test_planted_effect_json(built):
    p = json.loads((built["a"] / "planted_effect.json").read_text())
    assert p["effect"] == 2.0 and p["null"] is False and p["seed"] == 0
    assert p["volumes"]["structures"] == list(synthetic.VOLUME_STRUCTURES)
    assert p["volumes"]["factor_sz"] == pytest.approx(0.9)
    assert p["timecourses"]["coupling_sz"] == pytest.approx(0.85)
    assert p["timecourses"]["domains"] == ["SC", "DM"]
    assert p["spatial_maps"]["factor_sz"] == pytest.approx(0.7)
    n = json.loads((built["null"] / "planted_effect.json").read_text())
    assert n["null"] is True and n["effect"] == 0.0
    assert n["volumes"]["factor_sz"] == n["spatial_maps"]["factor_sz"] == 1.0
    assert n["timecourses"]["coupling_sz"] == n["timecourses"]["coupling_hc"]


def test_cohort_yaml_valid_and_paths_resolve(built):
    root = built["a"]
    doc = yaml.safe_load((root / "cohort.yaml").read_text())
    block = doc["cohorts"]["demo"]
    assert block["groups"]["by"] == [{"column": "Subject Type", "map": {"Patient": "SZ", "Control": "HC"}}]
    for rel in (
        block["phenotype"],
        block["freesurfer"]["subjects_dir"],
        block["gift"]["dir"],
    ):
        assert not Path(rel).is_absolute() and (root / rel).exists()
    assert block["gift"]["prefix"] == "demo" and block["gift"]["n_components"] == 53
    assert block["gift"]["subjects"] is None and block["gift"]["tr"] is None  # GIFT's own record
    schema_path = Path(synthetic.__file__).parents[2] / "schemas" / "cohort.schema.yaml"
    if not schema_path.is_file():
        pytest.skip("cohort schema not present")
    import jsonschema

    jsonschema.Draft202012Validator(yaml.safe_load(schema_path.read_text())).validate(block)


# ------------------------------------------------------------------------ CLI and failures
def test_cli_refuses_non_empty_dir_and_force_replaces(tmp_path, capsys):
    out = tmp_path / "c"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    args = [
        "make-demo-cohort",
        "--out",
        str(out),
        "--seed",
        "3",
        "--small",
        "--n-sz",
        "2",
        "--n-hc",
        "2",
    ]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "autospec make-demo-cohort: error:" in err and str(out) in err and "--force" in err
    assert (out / "keep.txt").exists()
    assert cli.main(args + ["--force"]) == 0
    assert not (out / "keep.txt").exists() and len(subjects(out)) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # no temp dirs left


def test_error_leaves_no_partial_cohort(tmp_path, monkeypatch):
    calls = []

    def failing(img, path):
        calls.append(path)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real(img, path)

    real = gift_output.save_image
    monkeypatch.setattr(gift_output, "save_image", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        synthetic.make_demo_cohort(tmp_path / "c", small=True, n_sz=2, n_hc=2)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kw", [{"effect": -1.0}, {"effect": 4.5}, {"n_sz": 1}, {"seed": -2}])
def test_bad_arguments(tmp_path, kw):
    with pytest.raises(InputError):
        synthetic.make_demo_cohort(tmp_path / "c", small=True, **kw)
    assert not (tmp_path / "c").exists()


@pytest.mark.slow
def test_full_size_cohort(tmp_path):
    t0 = time.perf_counter()
    root = synthetic.make_demo_cohort(tmp_path / "full", seed=0)
    elapsed = time.perf_counter() - t0
    print(f"full-size demo cohort built in {elapsed:.1f} s")
    assert elapsed < 180
    assert len(subjects(root)) == 147 and len(phenotype(root)) == 149
    maps = nib.load(root / "gift" / "demo_sub147_component_ica_s1_.nii")
    assert maps.shape == (53, 63, 52, 53)
    np.testing.assert_allclose(np.diag(maps.affine), [3, 3, 3, 1])
    v = _etiv_norm_volumes(root, ["Left-Hippocampus", "Right-Hippocampus"])
    assert len(v["Patient"]) == 72 and len(v["Control"]) == 75
    assert v["Patient"].mean() < 0.98 * v["Control"].mean()  # effect 1: x 0.95 planted
