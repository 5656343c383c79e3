"""Write a GIFT group-ICA output directory the way GIFT writes it (demo cohort, test fixtures).

What GIFT writes and where it says so (trendscenter/gift, GroupICAT/icatb/):

- file names: ``icatb_defaults.m`` (``_component_ica_``, ``_timecourses_ica_``, session
  postfix ``s``, ``_sub``, ``_mean``, ``_ica_parameter_info``), ``icatb_getOutputFileNames.m``
  (``<prefix>_sub<k>_component_ica_s<s>_.nii``, ``<prefix>_mean_component_ica_s_all_.nii``),
  ``icatb_returnFileIndex.m`` (``001``);
- headers: ``icatb_saveICAData.m`` copies the FIRST FUNCTIONAL VOLUME's header
  (``V = HInfo.V(1)``) and changes only ``dim`` (time courses ``[T C 1]``; maps X Y Z with
  one volume per component), data type float32 (``icatb_write_vol.m``: ``dt(1) = 16``);
  SPM writes pixdim from that header's affine, so the time-course pixdim is the voxel size;
- ``<prefix>_ica_parameter_info.mat`` (``sesInfo``) and ``<prefix>Subject.mat`` (``files``,
  ``numOfSub``, ``numOfSess``, ``SPMFiles``, ``modalityType``): ``icatb_read_batch_file.m``,
  ``icatb_parameterInitialization.m``; saved ``-v7.3`` by default (``ENFORCE_MAT_FILE_VER``),
  v5/v7 by older set-ups; data set ``(k - 1) * numOfSess + s`` is subject k, session s.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from .. import gift
from ..gift_run import parameter_file, subject_file
from .matfile_writer import CharMatrix, StructArray, save_mat

SPM_DESCRIP = b"spm - realigned, normalised, smoothed"


def functional_header(affine: np.ndarray, shape: Sequence[int], n_volumes: int, tr: float) -> nib.Nifti1Header:
    """The header of a preprocessed 4-D functional image (X, Y, Z, T) as SPM writes it:
    pixdim = voxel sizes then TR, units mm and s, q/sform from ``affine`` (code 2, aligned)."""
    img = nib.Nifti1Image(np.zeros((1, 1, 1, 1), np.float32), affine)
    hdr: nib.Nifti1Header = img.header.copy()
    hdr.set_data_shape((*[int(s) for s in shape[:3]], int(n_volumes)))
    hdr.set_data_dtype(np.int16)
    voxel = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
    hdr.set_zooms((*voxel.tolist(), float(tr)))
    hdr.set_xyzt_units(xyz="mm", t="sec")
    hdr.set_qform(affine, code=2)
    hdr.set_sform(affine, code=2)
    hdr["descrip"] = SPM_DESCRIP
    return hdr


def _from_functional(data: np.ndarray, func: nib.Nifti1Header) -> nib.Nifti1Image:
    """An image with ``func``'s header, only the data shape (dim) and float32 type changed."""
    hdr = func.copy()
    hdr.set_data_shape(data.shape)
    hdr.set_data_dtype(np.float32)
    hdr.set_slope_inter(1.0, 0.0)
    zooms = list(func.get_zooms()) + [1.0] * 8
    hdr.set_zooms(zooms[: data.ndim])  # the same pixdim values, as many as the new dims
    img = nib.Nifti1Image(np.asarray(data, dtype=np.float32), None, hdr)
    img.set_qform(func.get_qform(), code=int(func["qform_code"]))
    img.set_sform(func.get_sform(), code=int(func["sform_code"]))
    return img


def timecourse_image(tc: np.ndarray, func: nib.Nifti1Header) -> nib.Nifti1Image:
    """GIFT's time-course image: (T, C, 1) float32 with the functional header (dim changed)."""
    return _from_functional(np.asarray(tc)[:, :, None], func)


def maps_image(maps: np.ndarray, func: nib.Nifti1Header) -> nib.Nifti1Image:
    """GIFT's component image: (X, Y, Z, C) float32 with the functional header (dim changed)."""
    return _from_functional(np.asarray(maps), func)


def save_image(img: nib.Nifti1Image, path: Path) -> None:
    """Write ``img``; ``.nii.gz`` deterministically (gzip without a time stamp)."""
    if str(path).endswith(".gz"):
        path.write_bytes(gzip.compress(img.to_bytes(), compresslevel=6, mtime=0))
    else:
        path.write_bytes(img.to_bytes())


@dataclass
class GiftSubject:
    """One subject of a GIFT run: its functional inputs, header and outputs per session."""

    input_files: list[str]  # one functional file per session (4-D NIfTI)
    n_volumes: list[int]  # per session
    header: nib.Nifti1Header  # first functional volume's header
    timecourses: list[np.ndarray] | None = None  # per session (T, C)
    maps: list[np.ndarray] | None = None  # per session (X, Y, Z, C)


def _files_struct(subjects: Sequence[GiftSubject]) -> StructArray:
    # icatb_dataSelection lists each data set's volumes, "file.nii,1" ... one row per volume
    return StructArray(
        {"name": CharMatrix(f"{f},{v}" for v in range(1, n + 1))}
        for s in subjects
        for f, n in zip(s.input_files, s.n_volumes)
    )


def write_parameter_files(
    out: Path,
    prefix: str,
    subjects: Sequence[GiftSubject],
    tr: float | Sequence[float] | None,
    version: str = "7.3",
    *,
    recorded_dir: str | None = None,
) -> list[Path]:
    """``<prefix>_ica_parameter_info.mat`` (``sesInfo``) and ``<prefix>Subject.mat``.

    ``recorded_dir``: the output directory GIFT ran in, as it records it (``pwd``,
    ``outputDir``); default ``out``. Results are often moved after the run, so readers never
    rely on it.
    """
    rec = recorded_dir or str(out)
    n_sub, n_sess = len(subjects), len(subjects[0].input_files)
    files = _files_struct(subjects)
    n_comp = next((tc[0].shape[1] for s in subjects if (tc := s.timecourses)), 0)
    tr_value = None if tr is None else np.asarray(tr, dtype=float).reshape(1, -1)  # 1 x 1 or 1 x numOfSub
    points = [n for s in subjects for n in s.n_volumes]
    user = {
        "prefix": prefix,
        "files": files,
        "numOfSub": n_sub,
        "numOfSess": n_sess,
        "TR": tr_value,
        "pwd": rec,
        "param_file": f"{rec}/{parameter_file(out, prefix).name}",
        "dataType": "real",
        "numComp": n_comp,
        "diffTimePoints": np.asarray(points, float)[None, :],
    }
    ses = {
        "userInput": user,
        "outputDir": rec,
        "numOfSub": n_sub,
        "numOfSess": n_sess,
        "numOfDataSets": n_sub * n_sess,
        "numComp": n_comp,
        "inputFiles": files,
        "TR": tr_value,
        "diffTimePoints": np.asarray(points, float)[None, :],
        "numOfScans": points[0],
        "flagTimePoints": "same_time_points" if len(set(points)) == 1 else "different_time_points",
        "param_file": f"{prefix}_ica_parameter_info",
        "isInitialized": 1,
    }
    pfile, sfile = parameter_file(out, prefix), subject_file(out, prefix)
    save_mat(pfile, {"sesInfo": ses}, version)
    subject_vars = {"files": files, "numOfSub": n_sub, "numOfSess": n_sess, "SPMFiles": None, "modalityType": "fMRI"}
    save_mat(sfile, subject_vars, version)
    return [pfile, sfile]


def write_subject_outputs(out: Path, prefix: str, k: int, subject: GiftSubject, ext: str = ".nii") -> list[Path]:
    """Subject ``k``'s time-course and component files, every session."""
    written = []
    for s in range(len(subject.input_files)):
        if subject.timecourses is not None:
            p = gift.timecourse_path(out, prefix, k, s + 1, ext)
            save_image(timecourse_image(subject.timecourses[s], subject.header), p)
            written.append(p)
        if subject.maps is not None:
            p = gift.component_path(out, prefix, k, s + 1, ext)
            save_image(maps_image(subject.maps[s], subject.header), p)
            written.append(p)
    return written


def write_mean_outputs(
    out: Path, prefix: str, header: nib.Nifti1Header, mean_maps: np.ndarray | None, mean_tc: np.ndarray | None
) -> list[Path]:
    """``<prefix>_mean_component_ica_s_all_.nii`` and ``<prefix>_mean_timecourses_ica_s_all_.nii``."""
    written = []
    if mean_maps is not None:
        p = Path(out) / f"{prefix}_mean_component_ica_s_all_.nii"
        save_image(maps_image(mean_maps, header), p)
        written.append(p)
    if mean_tc is not None:
        p = Path(out) / f"{prefix}_mean_timecourses_ica_s_all_.nii"
        save_image(timecourse_image(mean_tc, header), p)
        written.append(p)
    return written


def write_gift_output(
    out: os.PathLike[str] | str,
    prefix: str,
    subjects: Sequence[GiftSubject],
    tr: float | Sequence[float] | None,
    *,
    mat_version: str = "7.3",
    ext: str = ".nii",
    means: bool = True,
    recorded_dir: str | None = None,
) -> list[Path]:
    """A whole GIFT output directory for ``subjects`` (in GIFT's subject order)."""
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    written = write_parameter_files(d, prefix, subjects, tr, mat_version, recorded_dir=recorded_dir)
    for k, s in enumerate(subjects, start=1):
        written += write_subject_outputs(d, prefix, k, s, ext)
    if means:
        maps = [m for s in subjects for m in (s.maps or [])]
        tcs = [t for s in subjects for t in (s.timecourses or [])]
        same = len({t.shape for t in tcs}) == 1
        written += write_mean_outputs(
            d,
            prefix,
            subjects[0].header,
            np.mean(maps, axis=0) if maps else None,
            np.mean(tcs, axis=0) if tcs and same else None,
        )
    return written
