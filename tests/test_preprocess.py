"""Preprocessing to the prepared-dataset file, through the library and `autospec preprocess`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from cohort_files import (
    GRID,
    IDS,
    N_C,
    N_T,
    TR,
    TYPES,
    VOXEL_MM,
    assert_fails,
    edit_block,
    real_aseg,
    run_cli,
    write_cohort,
    write_timecourses,
)

from autospec.data.cohort import load_cohort_config
from autospec.data.dataset import load_dataset
from autospec.data.neuromark import component_domains
from autospec.data.preprocess import (
    preprocess_spatial_maps,
    preprocess_timecourses,
    preprocess_volumes,
)


# ---------------------------------------------------------------------------- good paths
def test_volumes_dataset_and_manifest(tmp_path, shared_data, capsys):
    cfg = write_cohort(tmp_path / "c", real_aseg(shared_data))
    out = tmp_path / "out" / "vol.npz"
    rc, err = run_cli(capsys, cfg, "volumes", out)
    assert rc == 0, err
    ds = load_dataset(out)
    assert ds.X.shape == (6, 45)
    assert list(ds.subject_ids) == IDS  # phenotype order
    assert list(ds.group_names) == ["HC", "SZ"] and list(ds.class_names) == ["HC", "SZ"]
    assert [ds.group_names[g] for g in ds.groups] == ["SZ" if t == "Patient" else "HC" for t in TYPES]
    np.testing.assert_array_equal(ds.y, ds.groups)
    assert "Left-Thalamus" in ds.meta["feature_names"] and ds.meta["kind"] == "volumes"
    # nothing fitted across subjects: eTIV fractions, standardisation left to the trainer
    assert ds.meta["standardize"] == "features" and ds.meta["units"] == "fraction of eTIV"
    assert np.all(ds.X >= 0) and np.all(ds.X < 1) and ds.X.mean() > 0
    assert ds.meta["left_out"] == {"disenrolled": ["A00000099"]}

    m = json.loads(Path(f"{out}.manifest.json").read_text())
    paths = {Path(r["path"]).name for r in m["inputs"]}
    assert {"cohorts.yaml", "phenotype.csv", "aseg.stats"} <= paths
    assert len([r for r in m["inputs"] if r["path"].endswith("aseg.stats")]) == 6
    assert m["outputs"][0]["path"] == str(out) and len(m["outputs"][0]["sha256"]) == 64
    assert m["params"]["freesurfer"]["etiv_normalize"] is True and m["params"]["kind"] == "volumes"
    assert [p.name for p in out.parent.iterdir()] != [] and not list(out.parent.glob(".*tmp"))


def test_volumes_etiv_normalisation_without_zscore(tmp_path, shared_data):
    src = real_aseg(shared_data)
    cfg = load_cohort_config(
        write_cohort(
            tmp_path,
            src,
            freesurfer={
                "subjects_dir": "freesurfer",
                "zscore": False,
                "structures": ["Left-Hippocampus"],
            },
        )
    )
    ds = preprocess_volumes(cfg)
    assert ds.X.shape == (6, 1) and ds.meta["units"] == "fraction of eTIV"
    # subject 0 has factor 1.1 (patient): 4333.5 * 1.1 / eTIV
    np.testing.assert_allclose(ds.X[0, 0], round(4333.5 * 1.1, 1) / 1420434.160521, rtol=1e-6)


def test_timecourses_dataset(tmp_path):
    cfg = load_cohort_config(write_cohort(tmp_path))
    ds = preprocess_timecourses(cfg)
    assert ds.X.shape == (6, N_T, N_C)
    assert ds.meta["tr"] == TR and ds.meta["components"] == list(range(1, 54))
    assert ds.meta["domains"] == component_domains()
    np.testing.assert_allclose(ds.X.mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(ds.X.std(axis=1, ddof=1), 1, atol=1e-4)
    # the band-pass keeps the planted 0.05 Hz rhythm: it dominates the group-mean spectrum
    spec = np.abs(np.fft.rfft(ds.X.mean(axis=(0, 2)))) ** 2
    assert np.fft.rfftfreq(N_T, TR)[spec.argmax()] == pytest.approx(0.05, abs=0.0126)


def test_timecourses_component_selection_and_unequal_lengths(tmp_path, caplog, capsys):
    root = tmp_path / "c"
    cfg = write_cohort(root)
    write_timecourses(
        root / "gift" / "demo_sub002_timecourses_ica_s1_.nii",
        np.random.default_rng(1).normal(size=(36, N_C)),
    )
    edit_block(cfg, gift={"dir": "gift", "prefix": "demo", "components": [3, 1, 53]})
    caplog.set_level("INFO", logger="autospec")
    ds = preprocess_timecourses(load_cohort_config(cfg))
    assert ds.X.shape == (6, 36, 3) and ds.meta["components"] == [3, 1, 53]
    assert ds.meta["domains"] == ["SC", "SC", "CB"] and ds.meta["cropped"] == [i for i in IDS if i != IDS[1]]
    assert "cropped to 36" in caplog.text and IDS[0] in caplog.text

    edit_block(
        cfg,
        gift={"dir": "gift", "prefix": "demo", "timecourses": {"length_policy": "pad"}},
    )
    ds = preprocess_timecourses(load_cohort_config(cfg))
    assert ds.X.shape == (6, N_T, N_C) and ds.meta["padded"] == [IDS[1]]
    np.testing.assert_array_equal(ds.X[1, 36:], 0)

    edit_block(
        cfg,
        gift={"dir": "gift", "prefix": "demo", "timecourses": {"length_policy": "error"}},
    )
    assert_fails(capsys, cfg, "timecourses", IDS[1], "36 time points", "length_policy error")


def test_spatial_maps_dataset_and_mean_map(tmp_path, capsys):
    root = tmp_path / "c"
    cfg = write_cohort(root)
    out, mean = tmp_path / "out" / "maps.npz", tmp_path / "out" / "mean.nii.gz"
    rc, err = run_cli(capsys, cfg, "spatialmaps", out, "--mean-map", str(mean))
    assert rc == 0, err
    ds = load_dataset(out)
    assert ds.X.shape == (6, *GRID)
    first = nib.load(root / "gift" / "demo_sub001_component_ica_s1_.nii").get_fdata()
    np.testing.assert_allclose(ds.X[0], first.max(axis=3), rtol=1e-6)
    img = nib.load(mean)
    np.testing.assert_allclose(img.get_fdata(), ds.X.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(img.affine, np.diag([3.0, 3.0, 3.0, 1.0]))
    m = json.loads(Path(f"{mean}.manifest.json").read_text())
    assert {Path(r["path"]).name for r in m["outputs"]} == {"maps.npz", "mean.nii.gz"}
    assert len([r for r in m["inputs"] if "component_ica" in r["path"]]) == 6
    assert any(r["path"].endswith("demo_ica_parameter_info.mat") for r in m["inputs"])


def test_spatial_maps_resample_and_mask(tmp_path):
    root = tmp_path / "c"
    cfg = write_cohort(root)
    mask = np.zeros(GRID, dtype=np.uint8)
    mask[1:4, 1:5, 1:3] = 1
    nib.save(nib.Nifti1Image(mask, np.diag([3.0, 3.0, 3.0, 1.0])), root / "mask.nii.gz")
    edit_block(
        cfg,
        gift={"dir": "gift", "prefix": "demo", "spatial_maps": {"mask": "mask.nii.gz"}},
    )
    ds, _ = preprocess_spatial_maps(load_cohort_config(cfg))
    assert np.all(ds.X[:, mask == 0] == 0) and np.any(ds.X[:, mask == 1] != 0)

    edit_block(
        cfg,
        gift={
            "dir": "gift",
            "prefix": "demo",
            "spatial_maps": {"target_shape": [10, 12, 8], "reduce": "mean"},
        },
    )
    ds, mean = preprocess_spatial_maps(load_cohort_config(cfg))
    assert ds.X.shape == (6, 10, 12, 8) and mean.shape == (10, 12, 8)
    np.testing.assert_allclose(np.diag(mean.affine)[:3], [1.5, 1.5, 1.5])
    # same field of view: the outer corner of voxel 0 stays at -1.5 mm
    np.testing.assert_allclose(mean.affine[:3, 3], -1.5 + 0.75)


# ------------------------------------------------------------- bad NIfTI inputs via the CLI
def _tc(root: Path, k: int = 3) -> Path:
    return root / "gift" / f"demo_sub{k:03d}_timecourses_ica_s1_.nii"


def test_corrupt_nifti(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c")
    _tc(tmp_path / "c").write_bytes(b"this is not a NIfTI file" * 20)
    assert_fails(capsys, cfg, "timecourses", _tc(tmp_path / "c"), "corrupt or truncated")


def test_truncated_nifti(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c")
    f = tmp_path / "c" / "gift" / "demo_sub002_component_ica_s1_.nii"
    f.write_bytes(f.read_bytes()[:1000])
    assert_fails(capsys, cfg, "spatialmaps", f, "corrupt or truncated")


def test_transposed_timecourses(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c")
    write_timecourses(_tc(tmp_path / "c"), np.ones((N_C, N_T)))
    assert_fails(capsys, cfg, "timecourses", _tc(tmp_path / "c"), "looks transposed")


def test_wrong_component_count(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c")
    write_timecourses(_tc(tmp_path / "c"), np.ones((N_T, 52)))
    assert_fails(capsys, cfg, "timecourses", _tc(tmp_path / "c"), "52 components, config says 53")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_timecourses(tmp_path, capsys, bad):
    cfg = write_cohort(tmp_path / "c")
    data = np.ones((N_T, N_C))
    data[5, 7] = bad
    write_timecourses(_tc(tmp_path / "c"), data)
    assert_fails(
        capsys,
        cfg,
        "timecourses",
        _tc(tmp_path / "c"),
        "NaN" if math.isnan(bad) else "Inf",
        "component(s) 8",
    )


def test_pixdim_is_never_the_tr(tmp_path):
    """GIFT's time-course header is the functional one: pixdim = voxel size (3 mm), not TR."""
    cfg = write_cohort(tmp_path / "c")
    hdr = nib.load(_tc(tmp_path / "c")).header
    assert hdr.get_zooms()[:3] == (VOXEL_MM,) * 3 and VOXEL_MM != TR
    ds = preprocess_timecourses(load_cohort_config(cfg))
    assert ds.meta["tr"] == TR and ds.meta["subject_tr"] == dict.fromkeys(IDS, TR)


def test_tr_config_disagrees_with_gift(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c")
    edit_block(cfg, gift={"dir": "gift", "prefix": "demo", "tr": 2.5})
    assert_fails(capsys, cfg, "timecourses", f"subject {IDS[0]}", "TR 2 s", "gift.tr is 2.5 s", "tr_policy")
    edit_block(cfg, gift={"dir": "gift", "prefix": "demo", "tr": 2.5, "tr_policy": "use_config"})
    ds = preprocess_timecourses(load_cohort_config(cfg))
    assert ds.meta["tr"] == 2.5


def test_tr_per_subject_resample_or_refuse(tmp_path, capsys):
    trs = [2.0, 2.0, 1.0, 2.0, 2.0, 2.0]  # GIFT allows one TR per subject
    cfg = write_cohort(tmp_path / "c", tr=trs)
    assert_fails(capsys, cfg, "timecourses", f"subject {IDS[2]}", "TR 1 s", "tr_policy: resample")
    no_filter = {"low_pass": None, "high_pass": None}  # 20 samples: too short for the filter
    edit_block(
        cfg, gift={"dir": "gift", "prefix": "demo", "tr": 2.0, "tr_policy": "resample", "timecourses": no_filter}
    )
    ds = preprocess_timecourses(load_cohort_config(cfg))
    # subject 3's 40 samples at 1 s span 39 s: 20 samples at 2 s, so all are cropped to 20
    assert ds.meta["resampled"] == [IDS[2]] and ds.meta["original_lengths"][IDS[2]] == 20
    assert ds.X.shape == (6, 20, N_C)


def test_no_tr_anywhere(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c", tr=None)
    assert_fails(capsys, cfg, "timecourses", "field gift.tr", "records no TR")
    edit_block(cfg, gift={"dir": "gift", "prefix": "demo", "tr": 2.0})
    assert preprocess_timecourses(load_cohort_config(cfg)).meta["tr"] == 2.0


def test_missing_subject_file(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c")
    _tc(tmp_path / "c", 4).unlink()
    assert_fails(capsys, cfg, "timecourses", IDS[3], _tc(tmp_path / "c", 4))


def test_mean_map_only_for_spatialmaps(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c")
    rc, err = run_cli(
        capsys,
        cfg,
        "timecourses",
        tmp_path / "out" / "X.npz",
        "--mean-map",
        str(tmp_path / "out" / "m.nii.gz"),
    )
    assert rc == 2 and "--mean-map" in err and not (tmp_path / "out").exists()


def test_subprocess_exit_status(tmp_path):
    import subprocess
    import sys

    cfg = write_cohort(tmp_path / "c")
    _tc(tmp_path / "c").write_bytes(b"garbage")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "autospec",
            "preprocess",
            "--cohort-config",
            str(cfg),
            "--kind",
            "timecourses",
            "--out",
            str(tmp_path / "out" / "X.npz"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 2 and str(_tc(tmp_path / "c")) in r.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_cli_kinds_match_library():
    from autospec.commands import preprocess as cmd
    from autospec.data.cohort import KINDS

    assert cmd.KINDS == KINDS
