"""GIFT output directories as GIFT writes them: parameter MAT-files (v5 and v7.3), subject IDs
from input paths, files bound by their sub<k> index, sessions, .nii.gz, mean files, labels.

Every mismatch between GIFT's subject list and the files is an error naming index, file and
subject; a subject never silently gets another subject's data."""

from __future__ import annotations

import shutil

import h5py
import nibabel as nib
import numpy as np
import pytest
import scipy.io
from cohort_files import IDS, N_C, N_T, TR, assert_fails, edit_block, input_path, run_cli, write_cohort

from autospec.data import gift
from autospec.data.cohort import load_cohort_config
from autospec.data.dataset import load_dataset
from autospec.data.gift_run import read_gift_run
from autospec.data.matfile import load_mat
from autospec.data.preprocess import preprocess_spatial_maps, preprocess_timecourses
from autospec.data.subjects import cohort_subjects
from autospec.errors import InputError


def _raw_tc(root, k, s=1, ext=".nii"):
    return nib.load(gift.timecourse_path(root / "gift", "demo", k, s, ext)).get_fdata()[:, :, 0]  # a copy


# ------------------------------------------------------------------------- MAT-files
@pytest.mark.parametrize("version", ["5", "7.3"])
def test_parameter_file_decodes_to_gift_fields(tmp_path, version):
    write_cohort(tmp_path / "c", mat_version=version, tr=[2.0, 2.0, 2.5, 2.0, 2.0, 2.0])
    g = tmp_path / "c" / "gift"
    ses = load_mat(g / "demo_ica_parameter_info.mat", ["sesInfo"])["sesInfo"]
    assert int(ses["numOfSub"]) == 6 and int(ses["numOfSess"]) == 1 and int(ses["numOfDataSets"]) == 6
    assert np.asarray(ses["TR"]).tolist() == [2.0, 2.0, 2.5, 2.0, 2.0, 2.0]
    rows = ses["inputFiles"][2]["name"]
    assert rows == [f"{input_path(IDS[2])},{v}" for v in range(1, N_T + 1)]
    assert ses["userInput"]["prefix"] == "demo" and ses["userInput"]["files"] == ses["inputFiles"]
    run = read_gift_run(g, "demo", "sub-([^/_]+)", g / "subjects.txt", False)
    assert run.subject_ids == IDS and run.tr == [2.0, 2.0, 2.5, 2.0, 2.0, 2.0] and run.n_sessions == 1


def test_v5_file_read_by_scipy_independently(tmp_path):
    """The v5 fixture is what scipy (an independent MAT reader) sees as GIFT's struct."""
    write_cohort(tmp_path / "c", mat_version="5")
    raw = scipy.io.loadmat(tmp_path / "c" / "gift" / "demoSubject.mat", squeeze_me=True, struct_as_record=False)
    assert int(raw["numOfSub"]) == 6 and raw["modalityType"] == "fMRI"
    assert (
        raw["files"].shape == (6,) and raw["files"][0].name[0].rstrip() == f"{input_path(IDS[0])},1"
    )  # char matrix: padded


def test_v73_layout_is_matlabs(tmp_path):
    write_cohort(tmp_path / "c", mat_version="7.3")
    f = tmp_path / "c" / "gift" / "demo_ica_parameter_info.mat"
    assert f.read_bytes()[:19] == b"MATLAB 7.3 MAT-file"
    with h5py.File(f, "r") as h:
        ses = h["sesInfo"]
        assert ses.attrs["MATLAB_class"] == b"struct"
        names = ses["inputFiles"]["name"]
        assert names.dtype == h5py.ref_dtype and names.shape == (6, 1)
        chars = h[names[0, 0]]
        assert chars.attrs["MATLAB_class"] == b"char" and chars.dtype == np.uint16
        assert chars.shape == (len(f"{input_path(IDS[0])},10"), N_T)  # (columns, rows): transposed
        assert h["sesInfo"]["numOfSub"][()].shape == (1, 1)


def test_damaged_parameter_file(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c")
    p = tmp_path / "c" / "gift" / "demo_ica_parameter_info.mat"
    p.write_bytes(p.read_bytes()[:700])
    assert_fails(capsys, cfg, "timecourses", p, "MAT-file")
    p.write_bytes(b"not a mat file at all" * 10)
    assert_fails(capsys, cfg, "timecourses", p, "not a MATLAB MAT-file")


def test_subject_file_alone_and_subject_list_fallback(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c", mat_version="5", label=None)
    g = tmp_path / "c" / "gift"
    (g / "demo_ica_parameter_info.mat").unlink()  # GIFT stopped after setup: Subject.mat only
    edit_block(cfg, gift={"dir": "gift", "prefix": "demo", "tr": TR})
    subs = cohort_subjects(load_cohort_config(cfg), "timecourses")
    assert subs.ids == IDS and subs.meta_files[-1].name == "demoSubject.mat"
    (g / "demoSubject.mat").unlink()
    assert_fails(capsys, cfg, "timecourses", "no GIFT parameter file", "subjects.txt")
    (g / "subjects.txt").write_bytes(("\ufeff" + "\r\n".join(IDS) + "\r\n").encode())  # BOM + CRLF
    assert cohort_subjects(load_cohort_config(cfg), "timecourses").ids == IDS


def test_subject_ids_from_paths_by_regex(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c")
    edit_block(cfg, gift={"dir": "gift", "prefix": "demo", "subject_id_regex": r"(A\d{8})"})
    assert cohort_subjects(load_cohort_config(cfg), "timecourses").ids == IDS
    edit_block(cfg, gift={"dir": "gift", "prefix": "demo", "subject_id_regex": r"/nomatch-(\d+)/"})
    assert_fails(capsys, cfg, "timecourses", "GIFT subject 1", "no subject ID", "nomatch")
    edit_block(cfg, gift={"dir": "gift", "prefix": "demo", "subject_id_regex": r"sub-(A0)"})
    assert_fails(capsys, cfg, "timecourses", "GIFT subjects 1 and 2 both have subject ID A0")
    edit_block(cfg, gift={"dir": "gift", "prefix": "demo", "subject_id_regex": "(unclosed"})
    assert_fails(capsys, cfg, "timecourses", "field gift.subject_id_regex", "not a regular expression")


# -------------------------------------------------------------- binding: every mismatch
def test_removed_line_in_subject_list_is_an_error(tmp_path, capsys):
    """The issue's repro: one line removed from subjects.txt used to shift 19 of 23 subjects."""
    cfg = write_cohort(tmp_path / "c")
    lst = tmp_path / "c" / "gift" / "subjects.txt"
    lst.write_text("\n".join(IDS[:2] + IDS[3:]) + "\n")
    edit_block(cfg, gift={"dir": "gift", "prefix": "demo", "subjects": "gift/subjects.txt"})
    assert_fails(capsys, cfg, "timecourses", lst, "5 subjects", "numOfSub 6")
    for p in (tmp_path / "c" / "gift").glob("demo*.mat"):
        p.unlink()  # no GIFT record left: the files themselves show the missing line
    edit_block(cfg, gift={"dir": "gift", "prefix": "demo", "subjects": "gift/subjects.txt", "tr": TR})
    assert_fails(
        capsys, cfg, "timecourses", "demo_sub006_timecourses_ica_s1_.nii", "GIFT subject index 6", "5 subjects"
    )


def test_excluded_or_dropped_subject_never_renumbers(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c", exclude=[IDS[2]])
    edit_block(
        cfg,
        gift={
            "dir": "gift",
            "prefix": "demo",
            "timecourses": {"detrend": False, "low_pass": None, "high_pass": None, "standardize": False},
        },
    )
    ds = preprocess_timecourses(load_cohort_config(cfg))
    assert list(ds.subject_ids) == IDS[:2] + IDS[3:] and ds.meta["gift_index"][IDS[3]] == 4
    for i, sid in enumerate(ds.subject_ids):
        k = IDS.index(sid) + 1  # GIFT subject k's own file, whoever is left out
        np.testing.assert_allclose(ds.X[i], _raw_tc(tmp_path / "c", k), rtol=1e-6)
    # the excluded subject's file may be gone; the others keep their files
    gift.timecourse_path(tmp_path / "c" / "gift", "demo", 3).unlink()
    assert preprocess_timecourses(load_cohort_config(cfg)).n == 5


def test_extra_file_is_an_error(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c")
    g = tmp_path / "c" / "gift"
    extra = gift.timecourse_path(g, "demo", 7)
    shutil.copy(gift.timecourse_path(g, "demo", 1), extra)
    assert_fails(capsys, cfg, "timecourses", extra, "GIFT subject index 7", "lists 6 subjects")


def test_missing_file_is_an_error(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c")
    f = gift.timecourse_path(tmp_path / "c" / "gift", "demo", 4)
    f.unlink()
    assert_fails(capsys, cfg, "timecourses", f"subject {IDS[3]}", "GIFT subject 4", str(f))


@pytest.mark.parametrize("dup", ["demo_sub003_timecourses_ica_s1_.nii.gz", "demo_sub03_timecourses_ica_s1_.nii"])
def test_duplicated_index_is_an_error(tmp_path, capsys, dup):
    cfg = write_cohort(tmp_path / "c")
    g = tmp_path / "c" / "gift"
    shutil.copy(gift.timecourse_path(g, "demo", 3), g / dup)
    assert_fails(capsys, cfg, "timecourses", "two files for GIFT subject index 3", dup)


def test_session_outside_gift_run(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c")
    g = tmp_path / "c" / "gift"
    s2 = gift.timecourse_path(g, "demo", 2, 2)
    shutil.copy(gift.timecourse_path(g, "demo", 2), s2)
    assert_fails(capsys, cfg, "timecourses", s2, "session 2", "1 session(s)")


# ---------------------------------------------------------------- what GIFT can write
def test_nii_gz_outputs(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c", ext=".nii.gz")
    assert gift.timecourse_path(tmp_path / "c" / "gift", "demo", 1, 1, ".nii.gz").is_file()
    for kind in ("timecourses", "spatialmaps"):
        rc, err = run_cli(capsys, cfg, kind, tmp_path / "out" / f"{kind}.npz")
        assert rc == 0, err
        assert load_dataset(tmp_path / "out" / f"{kind}.npz").n == 6


def test_sessions_one_or_all(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c", n_sessions=2)
    edit_block(
        cfg,
        gift={
            "dir": "gift",
            "prefix": "demo",
            "sessions": 2,
            "timecourses": {"standardize": False, "detrend": False, "low_pass": None, "high_pass": None},
        },
    )
    ds = preprocess_timecourses(load_cohort_config(cfg))
    np.testing.assert_allclose(ds.X[0], _raw_tc(tmp_path / "c", 1, 2), rtol=1e-6)
    edit_block(cfg, gift={"dir": "gift", "prefix": "demo", "sessions": "all"})
    ds = preprocess_timecourses(load_cohort_config(cfg))
    assert ds.X.shape == (6, 2 * N_T, N_C) and ds.meta["sessions"] == "all"
    # each session z-scored on its own (nilearn runs=)
    np.testing.assert_allclose(ds.X[:, :N_T].std(axis=1, ddof=1), 1, atol=1e-4)
    np.testing.assert_allclose(ds.X[:, N_T:].std(axis=1, ddof=1), 1, atol=1e-4)
    maps, _ = preprocess_spatial_maps(load_cohort_config(cfg))
    g = tmp_path / "c" / "gift"
    m1 = nib.load(gift.component_path(g, "demo", 1, 1)).get_fdata()
    m2 = nib.load(gift.component_path(g, "demo", 1, 2)).get_fdata()
    np.testing.assert_allclose(maps.X[0], ((m1 + m2) / 2).max(axis=3), rtol=1e-5)
    edit_block(cfg, gift={"dir": "gift", "prefix": "demo", "sessions": 3})
    assert_fails(capsys, cfg, "timecourses", "field gift.sessions", "session 3 outside 1..2")


def test_mean_files_readable(tmp_path):
    write_cohort(tmp_path / "c")
    g = tmp_path / "c" / "gift"
    mean_maps = gift.read_component_maps(gift.mean_component_path(g, "demo"), N_C)
    subj = [gift.read_component_maps(gift.component_path(g, "demo", k), N_C).get_fdata() for k in range(1, 7)]
    np.testing.assert_allclose(mean_maps.get_fdata(), np.mean(subj, axis=0), atol=1e-5)
    mean_tc = gift.read_timecourses(gift.mean_timecourse_path(g, "demo"), N_C)
    np.testing.assert_allclose(mean_tc, np.mean([_raw_tc(tmp_path / "c", k) for k in range(1, 7)], axis=0), atol=1e-5)


def test_constant_timecourse_policy(tmp_path, capsys):
    from cohort_files import write_timecourses

    cfg = write_cohort(tmp_path / "c")
    f = gift.timecourse_path(tmp_path / "c" / "gift", "demo", 2)
    data = _raw_tc(tmp_path / "c", 2)
    data[:, 4] = 0.0
    write_timecourses(f, data)
    assert_fails(capsys, cfg, "timecourses", f"subject {IDS[1]}", "component(s) 5 constant", str(f))
    edit_block(cfg, gift={"dir": "gift", "prefix": "demo", "timecourses": {"constant_policy": "warn"}})
    ds = preprocess_timecourses(load_cohort_config(cfg))
    np.testing.assert_array_equal(ds.X[1, :, 4], 0)


# -------------------------------------------------------------------- component labels
def test_components_by_domain_label_table(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c")
    edit_block(cfg, gift={"dir": "gift", "prefix": "demo", "components": ["AU", 1]})
    ds = preprocess_timecourses(load_cohort_config(cfg))  # NeuroMark_1 domains by default
    assert ds.meta["components"] == [6, 7, 1] and ds.meta["domains"] == ["AU", "AU", "SC"]
    table = tmp_path / "c" / "labels.csv"
    table.write_text(
        "IC,label,domain\n" + "".join(f"{c},net{c},{'DMN' if c > 50 else 'other'}\n" for c in range(1, 54))
    )
    edit_block(
        cfg, gift={"dir": "gift", "prefix": "demo", "component_labels": "labels.csv", "components": ["DMN", "net2"]}
    )
    ds = preprocess_timecourses(load_cohort_config(cfg))
    assert ds.meta["components"] == [51, 52, 53, 2] and ds.meta["component_labels"] == [
        "net51",
        "net52",
        "net53",
        "net2",
    ]
    network = tmp_path / "c" / "RSN.txt"  # GIFT's own network file shape
    network.write_text("Visual, 11, 13\nDefault Mode, 7, 17\n")
    edit_block(
        cfg, gift={"dir": "gift", "prefix": "demo", "component_labels": "RSN.txt", "components": ["Default Mode"]}
    )
    assert preprocess_timecourses(load_cohort_config(cfg)).meta["components"] == [7, 17]
    edit_block(cfg, gift={"dir": "gift", "prefix": "demo", "component_labels": "RSN.txt", "components": ["Motor"]})
    assert_fails(capsys, cfg, "timecourses", "field gift.components", "'Motor'", "RSN.txt")
    network.write_text("Visual, 11, 99\n")
    assert_fails(capsys, cfg, "timecourses", "RSN.txt:1", "component 99 outside 1..53")


def test_affine_mismatch_shows_both(tmp_path, capsys):
    from cohort_files import write_maps

    cfg = write_cohort(tmp_path / "c")
    f = gift.component_path(tmp_path / "c" / "gift", "demo", 3)
    img = nib.load(f)
    nib.save(nib.Nifti1Image(img.get_fdata().astype(np.float32), np.diag([2.0, 2.0, 2.0, 1.0])), f)
    line = assert_fails(capsys, cfg, "spatialmaps", f"subject {IDS[2]}", str(f), "target_shape")
    assert "[2 0 0 0; 0 2 0 0; 0 0 2 0]" in line and "[3 0 0 0; 0 3 0 0; 0 0 3 0]" in line
    del write_maps


def test_raw_input_files_lists_gift_record(tmp_path):
    from autospec.data.cohort import raw_input_files

    cfg = load_cohort_config(write_cohort(tmp_path / "c", ext=".nii.gz", n_sessions=2))
    names = [p.name for p in raw_input_files(cfg, "timecourses")]
    assert names[:3] == ["phenotype.csv", "demo_ica_parameter_info.mat", "demoSubject.mat"]
    assert "demo_sub006_timecourses_ica_s2_.nii.gz" in names and len(names) == 3 + 12
    with pytest.raises(InputError, match="needs a freesurfer block"):
        raw_input_files(cfg, "volumes")
