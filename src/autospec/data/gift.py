"""Readers for GIFT / NeuroMark ICA outputs (NIfTI), with the checks a user's files need.

File names (GIFT convention; subject index 1-based, 3 digits, in the order of the input list):

- ``<prefix>_sub001_timecourses_ica_s1_.nii``: time courses, a 2-D image (T, C)
- ``<prefix>_sub001_component_ica_s1_.nii``: spatial maps, (X, Y, Z, C)
- ``<prefix>_mean_component_ica_s_all_.nii``: mean spatial maps over subjects

TR rule: the time-course header's TR is ``pixdim[1]`` (the spacing of the time axis, axis 0).
It is checked against the configured TR only when it is informative: values <= 0 and exactly
1.0 are treated as "not set", because 1.0 is what NIfTI writers (nibabel, SPM) store when no
spacing is given. Any other header value must equal the configured TR within 1e-3 s.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from ..errors import InputError

log = logging.getLogger(__name__)

TR_TOLERANCE = 1e-3
#: header spacings that mean "TR not recorded"
_UNSET_TR = (1.0,)
NIFTI_ERRORS = (ImageFileError, HeaderDataError, OSError, EOFError, ValueError, zlib.error)


def timecourse_path(directory: os.PathLike | str, prefix: str, index: int) -> Path:
    """``<dir>/<prefix>_subNNN_timecourses_ica_s1_.nii`` for 1-based subject ``index``."""
    return Path(directory) / f"{prefix}_sub{_index(index)}_timecourses_ica_s1_.nii"


def component_path(directory: os.PathLike | str, prefix: str, index: int) -> Path:
    """``<dir>/<prefix>_subNNN_component_ica_s1_.nii`` for 1-based subject ``index``."""
    return Path(directory) / f"{prefix}_sub{_index(index)}_component_ica_s1_.nii"


def mean_component_path(directory: os.PathLike | str, prefix: str) -> Path:
    """``<dir>/<prefix>_mean_component_ica_s_all_.nii``."""
    return Path(directory) / f"{prefix}_mean_component_ica_s_all_.nii"


def _index(index: int) -> str:
    if int(index) < 1:
        raise ValueError(f"GIFT subject index is 1-based, got {index}")
    return f"{int(index):03d}"


def read_subject_list(path: os.PathLike | str) -> list[str]:
    """Subject IDs of a GIFT order file, one per line (blank lines and ``#`` comments skipped).

    Line k of the file (k-th ID) is GIFT subject k (``subNNN``).
    """
    p = Path(path)
    try:
        lines = p.read_text().splitlines()
    except FileNotFoundError:
        raise InputError(f"{p}: subject list not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{p}: unreadable subject list ({err})") from None
    ids = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not ids:
        raise InputError(f"{p}: subject list is empty")
    seen: set[str] = set()
    for sid in ids:
        if sid in seen:
            raise InputError(f"{p}: subject {sid} listed twice")
        seen.add(sid)
    return ids


def _load(path: Path, what: str) -> tuple[nib.Nifti1Image, np.ndarray]:
    """Load a NIfTI image and its data; any read failure becomes an InputError naming the file."""
    if not path.is_file():
        raise InputError(f"{path}: {what} file not found")
    try:
        img = nib.load(path)
        data = np.asarray(img.dataobj)  # reads everything: truncation shows up here
    except NIFTI_ERRORS as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{path}: corrupt or truncated NIfTI {what} file ({msg})") from None
    return img, data


def _check_finite(path: Path, data: np.ndarray, what: str) -> None:
    if not np.issubdtype(data.dtype, np.floating):
        return
    bad = ~np.isfinite(data)
    if bad.any():
        kinds = []
        if np.isnan(data).any():
            kinds.append("NaN")
        if np.isinf(data).any():
            kinds.append("Inf")
        comp = np.flatnonzero(bad.reshape(-1, data.shape[-1]).any(axis=0))
        raise InputError(
            f"{path}: {what} contain {'/'.join(kinds)} ({int(bad.sum())} values, "
            f"component(s) {', '.join(str(c + 1) for c in comp[:5])})"
        )


def header_tr(img: nib.spatialimages.SpatialImage) -> float | None:
    """TR stored in a time-course image (spacing of axis 0), or None when not informative."""
    zooms = img.header.get_zooms()
    if not zooms:
        return None
    tr = float(zooms[0])
    if not np.isfinite(tr) or tr <= 0 or any(abs(tr - u) < 1e-9 for u in _UNSET_TR):
        return None
    return tr


def read_timecourses(path: os.PathLike | str, n_components: int, tr: float | None = None) -> np.ndarray:
    """ICA time courses of one subject as a float64 array (T, C).

    Raises
    ------
    InputError
        Missing, corrupt or truncated file; not 2-D; stored transposed (C, T); C differing from
        ``n_components``; NaN/Inf values; header TR differing from ``tr`` (see module doc).
    """
    p = Path(path)
    img, data = _load(p, "time-course")
    # GIFT writes a 2-D image; some writers pad with trailing singleton axes
    while data.ndim > 2 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 2:
        raise InputError(f"{p}: time courses must be a 2-D image (time points x components), got shape {data.shape}")
    n_t, n_c = data.shape
    if n_c != n_components:
        if n_t == n_components:
            raise InputError(
                f"{p}: time courses have shape {data.shape}, which looks transposed "
                f"(components x time points); expected (T, {n_components})"
            )
        raise InputError(f"{p}: time courses have {n_c} components, config says {n_components}")
    if n_t < 2:
        raise InputError(f"{p}: time courses have {n_t} time point(s)")
    _check_finite(p, data, "time courses")
    if tr is not None:
        htr = header_tr(img)
        if htr is not None and abs(htr - float(tr)) > TR_TOLERANCE:
            raise InputError(f"{p}: header TR (pixdim[1]) is {htr:g} s, config gift.tr is {float(tr):g} s")
    return np.asarray(data, dtype=np.float64)


def read_component_maps(path: os.PathLike | str, n_components: int) -> nib.Nifti1Image:
    """ICA spatial maps of one subject (or the mean maps) as a float32 image (X, Y, Z, C).

    Raises
    ------
    InputError
        Missing, corrupt or truncated file; not 4-D; component axis first or C differing from
        ``n_components``; NaN/Inf values.
    """
    p = Path(path)
    img, data = _load(p, "spatial-map")
    # (X, Y, Z, 1, C): some writers put components on the 5th NIfTI axis
    if data.ndim == 5 and data.shape[3] == 1:
        data = data[:, :, :, 0, :]
    while data.ndim > 4 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 4:
        raise InputError(f"{p}: spatial maps must be a 4-D image (X, Y, Z, C), got shape {data.shape}")
    if data.shape[3] != n_components:
        if data.shape[0] == n_components:
            raise InputError(
                f"{p}: spatial maps have shape {data.shape}, which looks transposed "
                f"(components first); expected (X, Y, Z, {n_components})"
            )
        raise InputError(f"{p}: spatial maps have {data.shape[3]} components, config says {n_components}")
    _check_finite(p, data, "spatial maps")
    header = img.header.copy() if isinstance(img, nib.Nifti1Image) else None
    out = nib.Nifti1Image(np.asarray(data, dtype=np.float32), img.affine, header)
    out.set_data_dtype(np.float32)
    return out


def select_components(
    data: np.ndarray,
    components: Sequence[int] | None,
    n_components: int,
    where: str = "gift.components",
) -> np.ndarray:
    """Keep the 1-based ``components`` (in the given order) of the last axis; None keeps all."""
    if components is None:
        return data
    comps = [int(c) for c in components]
    bad = [c for c in comps if not 1 <= c <= n_components]
    if bad:
        raise InputError(f"field {where}: component {bad[0]} outside 1..{n_components}")
    if len(set(comps)) != len(comps):
        raise InputError(f"field {where}: components listed twice")
    return data[..., [c - 1 for c in comps]]
