"""GIFT / NeuroMark NIfTI readers: file names, subject lists, and every check on the images."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from cohort_files import AFFINE, VOXEL_MM, write_timecourses

from autospec.data import gift
from autospec.data.gift_run import read_subject_list
from autospec.errors import InputError

AFF = np.diag([3.0, 3.0, 3.0, 1.0])


def _tc(path: Path, data) -> Path:
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.eye(4)), path)
    return path


def _maps(path: Path, data) -> Path:
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), AFF), path)
    return path


def _raises(fn, *needles):
    with pytest.raises(InputError) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg
    for n in needles:
        assert str(n) in msg, (n, msg)
    return msg


def test_paths(tmp_path):
    assert gift.timecourse_path(tmp_path, "cobre", 7) == tmp_path / "cobre_sub007_timecourses_ica_s1_.nii"
    assert gift.component_path(tmp_path, "x", 12).name == "x_sub012_component_ica_s1_.nii"
    assert gift.component_path(tmp_path, "x", 1234).name == "x_sub1234_component_ica_s1_.nii"
    assert gift.timecourse_path(tmp_path, "x", 3, 2, ".nii.gz").name == "x_sub003_timecourses_ica_s2_.nii.gz"
    assert gift.mean_component_path(tmp_path, "x").name == "x_mean_component_ica_s_all_.nii"
    (tmp_path / "x_mean_timecourses_ica_s_all_.nii.gz").write_bytes(b"")
    assert gift.mean_timecourse_path(tmp_path, "x").name == "x_mean_timecourses_ica_s_all_.nii.gz"
    with pytest.raises(ValueError):
        gift.timecourse_path(tmp_path, "x", 0)


def test_subject_list_bom_crlf_comments(tmp_path):
    f = tmp_path / "subjects.txt"
    f.write_bytes("\ufeff# order of the GIFT run\r\nA1\r\n\r\n  A2  \r\nA3\r\n".encode())
    assert read_subject_list(f) == ["A1", "A2", "A3"]
    f.write_text("A1\nA2\nA1\n")
    _raises(lambda: read_subject_list(f), f, "A1 listed twice", "entries 1 and 3")
    f.write_text("\n# nothing\n")
    _raises(lambda: read_subject_list(f), f, "empty")
    _raises(lambda: read_subject_list(tmp_path / "no.txt"), tmp_path / "no.txt", "not found")
    f.write_bytes(b"A1\n\xff\xfeA2\n")
    _raises(lambda: read_subject_list(f), f, "not UTF-8")
    _raises(lambda: read_subject_list(tmp_path), tmp_path, "is a directory")


def test_read_timecourses_gift_layout(tmp_path):
    """GIFT writes [T, C, 1] with the functional header: pixdim is the voxel size, unread."""
    data = np.random.default_rng(0).normal(size=(40, 53))
    f = tmp_path / "a.nii"
    write_timecourses(f, data)
    img = nib.load(f)
    assert img.shape == (40, 53, 1) and img.header.get_zooms()[:3] == (VOXEL_MM,) * 3
    assert img.header.get_data_dtype() == np.float32 and img.header["descrip"].tobytes().startswith(b"spm")
    np.testing.assert_allclose(img.affine, AFFINE)
    ts = gift.read_timecourses(f, 53)
    assert ts.shape == (40, 53) and ts.dtype == np.float64
    np.testing.assert_allclose(ts, data.astype(np.float32))
    # a plain (T, C) image is read the same; T == C is ambiguous: read as (T, C)
    assert gift.read_timecourses(_tc(tmp_path / "b.nii", data), 53).shape == (40, 53)
    assert gift.read_timecourses(_tc(tmp_path / "c.nii", np.ones((53, 53))), 53).shape == (53, 53)


def test_constant_components():
    ts = np.random.default_rng(0).normal(size=(10, 4))
    ts[:, 1] = 0.0
    ts[:, 3] = 5.0
    assert gift.constant_components(ts) == [2, 4]


@pytest.mark.parametrize(
    "shape, needle",
    [
        ((53, 40), "looks transposed"),
        ((40, 52), "52 components, config says 53"),
        ((40, 53, 2), "2-D image"),
        ((40,), "2-D image"),
        ((1, 53), "1 time point"),
    ],
)
def test_timecourse_shapes(tmp_path, shape, needle):
    f = _tc(tmp_path / "a.nii", np.ones(shape))
    _raises(lambda: gift.read_timecourses(f, 53), f, needle)


@pytest.mark.parametrize("bad, word", [(np.nan, "NaN"), (np.inf, "Inf"), (-np.inf, "Inf")])
def test_non_finite(tmp_path, bad, word):
    data = np.zeros((40, 53))
    data[3, 10] = bad
    f = _tc(tmp_path / "a.nii", data)
    _raises(lambda: gift.read_timecourses(f, 53), f, word, "component(s) 11")
    maps = np.zeros((4, 4, 4, 53))
    maps[1, 2, 3, 0] = bad
    g = _maps(tmp_path / "m.nii", maps)
    _raises(lambda: gift.read_component_maps(g, 53), g, word, "component(s) 1")


def test_corrupt_truncated_missing(tmp_path):
    f = _tc(tmp_path / "a.nii", np.ones((40, 53)))
    raw = f.read_bytes()
    bad = tmp_path / "garbage.nii"
    bad.write_bytes(b"\x00garbage" * 100)
    _raises(lambda: gift.read_timecourses(bad, 53), bad, "corrupt or truncated")
    short = tmp_path / "short.nii"
    short.write_bytes(raw[: len(raw) // 2])
    _raises(lambda: gift.read_timecourses(short, 53), short, "corrupt or truncated")
    header_only = tmp_path / "header.nii"
    header_only.write_bytes(raw[:200])
    _raises(lambda: gift.read_timecourses(header_only, 53), header_only, "corrupt or truncated")
    gz = tmp_path / "short.nii.gz"
    gz.write_bytes(gzip.compress(raw)[:-40])
    _raises(lambda: gift.read_timecourses(gz, 53), gz, "corrupt or truncated")
    _raises(lambda: gift.read_timecourses(tmp_path / "no.nii", 53), tmp_path / "no.nii", "not found")
    m = _maps(tmp_path / "m.nii", np.ones((5, 6, 4, 53)))
    m.write_bytes(m.read_bytes()[:3000])
    _raises(lambda: gift.read_component_maps(m, 53), m, "corrupt or truncated")


def test_component_maps(tmp_path):
    data = np.random.default_rng(1).normal(size=(5, 6, 4, 53))
    img = gift.read_component_maps(_maps(tmp_path / "m.nii", data), 53)
    assert img.shape == (5, 6, 4, 53) and img.get_data_dtype() == np.float32
    np.testing.assert_allclose(img.get_fdata(), data.astype(np.float32))
    np.testing.assert_allclose(img.affine, AFF)
    # (X, Y, Z, 1, C): components on the 5th NIfTI axis
    five = gift.read_component_maps(_maps(tmp_path / "m5.nii", data[:, :, :, None, :]), 53)
    assert five.shape == (5, 6, 4, 53)


@pytest.mark.parametrize(
    "shape, needle",
    [
        ((5, 6, 4), "4-D image"),
        ((5, 6, 4, 52), "52 components, config says 53"),
        ((53, 5, 6, 4), "looks transposed"),
    ],
)
def test_component_map_shapes(tmp_path, shape, needle):
    f = _maps(tmp_path / "m.nii", np.ones(shape))
    _raises(lambda: gift.read_component_maps(f, 53), f, needle)


def test_select_components():
    data = np.arange(2 * 5).reshape(2, 5)
    np.testing.assert_array_equal(gift.select_components(data, [5, 1], 5), data[:, [4, 0]])
    assert gift.select_components(data, None, 5) is data
    _raises(lambda: gift.select_components(data, [6], 5), "gift.components", "6 outside 1..5")
    _raises(lambda: gift.select_components(data, [0], 5), "gift.components")
    _raises(lambda: gift.select_components(data, [2, 2], 5), "twice")
