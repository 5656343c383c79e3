"""GIFT / NeuroMark ICA output files: names, binding to subjects, and the NIfTI readers.

Names (``icatb_defaults.m``, ``icatb_getOutputFileNames.m``, ``icatb_saveICAData.m``):

- ``<prefix>_sub<k>_component_ica_s<s>_.nii``: subject k's spatial maps, session s, (X, Y, Z, C)
- ``<prefix>_sub<k>_timecourses_ica_s<s>_.nii``: its time courses, a (T, C[, 1]) image
- ``<prefix>_mean_component_ica_s_all_.nii`` / ``<prefix>_mean_timecourses_ica_s_all_.nii``:
  the means over all data sets

``<k>`` is ``icatb_returnFileIndex``: 3 digits, zero-padded (``001``; more digits above 999).
Compressed ``.nii.gz`` files are read the same way.

The time-course file carries the header of the first functional volume with only ``dim``
changed (``icatb_saveICAData.m``: ``V = HInfo.V(1); V.dim(1:3) = [T C 1]``), so its pixdim
holds the functional VOXEL SIZE, never the TR: pixdim is not read here. The TR comes from the
cohort config or GIFT's parameter file (:mod:`autospec.data.gift_run`).
"""

from __future__ import annotations

import logging
import os
import re
import zlib
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError, SpatialImage

from ..errors import InputError
from .textfile import list_directory

log = logging.getLogger(__name__)

NIFTI_ERRORS = (
    ImageFileError,
    HeaderDataError,
    OSError,
    EOFError,
    ValueError,
    OverflowError,
    MemoryError,
    TypeError,
    zlib.error,
)
TIMECOURSES, COMPONENTS = "timecourses", "component"
EXTENSIONS = (".nii", ".nii.gz")


def file_index(index: int) -> str:
    """GIFT's subject index text (``icatb_returnFileIndex``): ``007``, ``012``, ``1234``."""
    if int(index) < 1:
        raise ValueError(f"GIFT subject index is 1-based, got {index}")
    return f"{int(index):03d}"


def subject_file_name(prefix: str, index: int, part: str, session: int = 1, ext: str = ".nii") -> str:
    """``<prefix>_sub<k>_<part>_ica_s<session>_<ext>``; ``part``: timecourses | component."""
    return f"{prefix}_sub{file_index(index)}_{part}_ica_s{int(session)}_{ext}"


def timecourse_path(
    directory: os.PathLike[str] | str, prefix: str, index: int, session: int = 1, ext: str = ".nii"
) -> Path:
    return Path(directory) / subject_file_name(prefix, index, TIMECOURSES, session, ext)


def component_path(
    directory: os.PathLike[str] | str, prefix: str, index: int, session: int = 1, ext: str = ".nii"
) -> Path:
    return Path(directory) / subject_file_name(prefix, index, COMPONENTS, session, ext)


def _existing(directory: os.PathLike[str] | str, stem: str) -> Path:
    for ext in EXTENSIONS:
        p = Path(directory) / f"{stem}{ext}"
        if p.is_file():
            return p
    return Path(directory) / f"{stem}.nii"


def mean_component_path(directory: os.PathLike[str] | str, prefix: str) -> Path:
    """``<prefix>_mean_component_ica_s_all_.nii`` (or ``.nii.gz`` when that one exists)."""
    return _existing(directory, f"{prefix}_mean_component_ica_s_all_")


def mean_timecourse_path(directory: os.PathLike[str] | str, prefix: str) -> Path:
    """``<prefix>_mean_timecourses_ica_s_all_.nii`` (or ``.nii.gz`` when that one exists)."""
    return _existing(directory, f"{prefix}_mean_timecourses_ica_s_all_")


def _pattern(prefix: str, part: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(prefix)}_sub(\d+)_{part}_ica_s(\d+)_\.nii(?:\.gz)?$")


def scan_subject_files(directory: os.PathLike[str] | str, prefix: str, part: str) -> dict[tuple[int, int], Path]:
    """Every ``<prefix>_sub<k>_<part>_ica_s<s>_.nii[.gz]`` of ``directory`` by (k, s).

    Raises
    ------
    InputError
        Unreadable directory, or two files for one (subject index, session): ``.nii`` next
        to ``.nii.gz``, or ``sub07`` next to ``sub007``.
    """
    d = Path(directory)
    names = list_directory(d, "gift.dir")
    pat = _pattern(prefix, part)
    found: dict[tuple[int, int], Path] = {}
    for name in names:
        m = pat.match(name)
        if not m:
            continue
        key = (int(m.group(1)), int(m.group(2)))
        if key in found:
            raise InputError(
                f"{d}: two files for GIFT subject index {key[0]} session {key[1]}: {found[key].name} and {name}"
            )
        found[key] = d / name
    return found


def bind_subject_files(
    directory: os.PathLike[str] | str,
    prefix: str,
    part: str,
    subject_ids: Sequence[str],
    *,
    n_sessions: int,
    source: Path,
    sessions: Sequence[int],
    may_miss: set[str] = frozenset(),  # type: ignore[assignment]
) -> dict[str, tuple[Path, ...]]:
    """Files of every listed subject for ``sessions``, bound by index: ``sub<k>`` is entry k.

    The files must match GIFT's list exactly: no index outside 1..N, no session outside
    1..numOfSess, no missing file (except for subjects in ``may_miss``, e.g. excluded ones).
    Any mismatch is an InputError naming the index, the file and the subject.
    """
    found = scan_subject_files(directory, prefix, part)
    n = len(subject_ids)
    for (k, s), f in sorted(found.items()):
        if not 1 <= k <= n:
            raise InputError(
                f"{f}: GIFT subject index {k}, but {source} lists {n} subjects "
                f"(a file without a subject, or a line removed from the list)"
            )
        if not 1 <= s <= n_sessions:
            raise InputError(f"{f}: session {s}, but {source} has {n_sessions} session(s)")
    bad = [s for s in sessions if not 1 <= s <= n_sessions]
    if bad:
        raise InputError(f"field gift.sessions: session {bad[0]} outside 1..{n_sessions} (GIFT's {source.name})")
    out: dict[str, tuple[Path, ...]] = {}
    for k, sid in enumerate(subject_ids, start=1):
        missing = [s for s in sessions if (k, s) not in found]
        if missing:
            expected = Path(directory) / subject_file_name(prefix, k, part, missing[0])
            if sid in may_miss:
                log.warning("subject %s (GIFT subject %d, excluded): %s not found", sid, k, expected)
                continue
            raise InputError(f"subject {sid}: GIFT subject {k} (entry {k} of {source}) has no file {expected}[.gz]")
        out[sid] = tuple(found[(k, s)] for s in sessions)
    return out


def _load(path: Path, what: str) -> tuple[SpatialImage, np.ndarray]:
    """Load a NIfTI image and its data; any read failure becomes an InputError naming the file."""
    if not path.is_file():
        raise InputError(f"{path}: {what} file not found")
    try:
        img = nib.load(path)
    except NIFTI_ERRORS as err:
        raise _corrupt(path, what, err) from None
    if not isinstance(img, SpatialImage):  # e.g. a CIFTI file: no voxel grid and no affine
        raise InputError(f"{path}: {what} file is a {type(img).__name__}, not a NIfTI volume")
    try:
        data = np.asarray(img.dataobj)  # reads everything: truncation shows up here
    except NIFTI_ERRORS as err:
        raise _corrupt(path, what, err) from None
    return img, data


def _corrupt(path: Path, what: str, err: BaseException) -> InputError:
    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
    return InputError(f"{path}: corrupt or truncated NIfTI {what} file ({msg})")


def _check_finite(path: Path, data: np.ndarray, what: str) -> None:
    if not np.issubdtype(data.dtype, np.floating):
        return
    bad = ~np.isfinite(data)
    if bad.any():
        kinds = [k for k, f in (("NaN", np.isnan), ("Inf", np.isinf)) if f(data).any()]
        comp = np.flatnonzero(bad.reshape(-1, data.shape[-1]).any(axis=0))
        raise InputError(
            f"{path}: {what} contain {'/'.join(kinds)} ({int(bad.sum())} values, "
            f"component(s) {', '.join(str(c + 1) for c in comp[:5])})"
        )


def read_timecourses(path: os.PathLike[str] | str, n_components: int) -> np.ndarray:
    """ICA time courses of one subject and session as a float64 array (T, C).

    The header's pixdim is not read (it is the functional voxel size; see module doc).

    Raises
    ------
    InputError
        Missing, corrupt or truncated file; not 2-D (after dropping trailing singleton axes,
        GIFT writes [T, C, 1]); stored transposed (C, T); C differing from ``n_components``;
        NaN/Inf values.
    """
    p = Path(path)
    _, data = _load(p, "time-course")
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
    return np.asarray(data, dtype=np.float64)


def read_component_maps(path: os.PathLike[str] | str, n_components: int) -> nib.Nifti1Image:
    """ICA spatial maps of one subject (or the mean maps) as a float32 image (X, Y, Z, C).

    Raises
    ------
    InputError
        Missing, corrupt or truncated file; not 4-D; component axis first or C differing from
        ``n_components``; NaN/Inf values.
    """
    p = Path(path)
    img, data = _load(p, "spatial-map")
    if data.ndim == 5 and data.shape[3] == 1:  # (X, Y, Z, 1, C): components on the 5th axis
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


def constant_components(ts: np.ndarray) -> list[int]:
    """1-based columns of (T, C) ``ts`` that do not change over time (all-zero included)."""
    return [int(c) + 1 for c in np.flatnonzero(np.ptp(ts, axis=0) == 0)]


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
