"""GIFT's own record of a group-ICA run: who subject k is, how many sessions, which TR.

GIFT writes, in its output directory (names from ``icatb_defaults.m`` and
``icatb_read_batch_file.m``):

- ``<prefix>_ica_parameter_info.mat`` with the struct ``sesInfo``: ``numOfSub``,
  ``numOfSess``, ``inputFiles`` (1 x numOfSub*numOfSess struct array, field ``name`` = a char
  matrix of the subject's functional files, one row per volume, ``file.nii,N`` for 4-D
  files), ``TR`` (scalar, or one per subject), ``userInput.prefix``;
- ``<prefix>Subject.mat`` with ``files`` (the same struct array), ``numOfSub``, ``numOfSess``.

Data set ``(k - 1) * numOfSess + s`` is subject ``k``, session ``s`` (``icatb_dataSelection``).
A subject's ID is taken from its first input file's path with a regular expression
(capture group 1 if it has one, else the whole match). Without these files, a plain subject
list (``subjects.txt``: line k = subject k) is the fallback.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .matfile import load_mat
from .textfile import read_text_lines

log = logging.getLogger(__name__)

PARAMETER_SUFFIX = "_ica_parameter_info.mat"  # PARAMETER_INFO_MAT_FILE + .mat
SUBJECT_SUFFIX = "Subject.mat"  # icatb_read_batch_file: [prefix, 'Subject.mat']
DEFAULT_ID_REGEX = "sub-([^/_]+)"  # BIDS sub-<label> -> <label>
BIDS_ID_REGEX = "(sub-[^/_]+)"  # BIDS participants.tsv keeps the sub- prefix
_VOLUME_SUFFIX = re.compile(r",\d+$")  # SPM-style "file.nii,12"


def parameter_file(directory: os.PathLike[str] | str, prefix: str) -> Path:
    """``<dir>/<prefix>_ica_parameter_info.mat``."""
    return Path(directory) / f"{prefix}{PARAMETER_SUFFIX}"


def subject_file(directory: os.PathLike[str] | str, prefix: str) -> Path:
    """``<dir>/<prefix>Subject.mat``."""
    return Path(directory) / f"{prefix}{SUBJECT_SUFFIX}"


@dataclass
class GiftRun:
    """Who GIFT subject k is (``subject_ids[k - 1]``), the sessions and TRs, and the source."""

    subject_ids: list[str]
    n_sessions: int
    tr: list[float] | None  # one per subject, or None when GIFT did not record it
    source: Path  # the file the subject list came from
    input_files: list[list[str]] = field(default_factory=list)  # [subject][session] first file
    meta_files: list[Path] = field(default_factory=list)  # every file read

    @property
    def n_subjects(self) -> int:
        return len(self.subject_ids)


def _as_list(v: Any) -> list[Any]:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _count(value: Any, name: str, path: Path) -> int:
    try:
        arr = np.asarray(value, dtype=float).ravel()
    except (TypeError, ValueError):
        arr = np.array([])
    if arr.size != 1 or not np.isfinite(arr[0]) or arr[0] < 1 or arr[0] != int(arr[0]):
        raise InputError(f"{path}: {name} is {value!r}, expected a positive whole number")
    return int(arr[0])


def _first_file(entry: Any, k: int, path: Path) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    rows = [r for r in _as_list(name) if isinstance(r, str) and r.strip()]
    if not rows:
        raise InputError(f"{path}: input files of data set {k} are empty")
    return _VOLUME_SUFFIX.sub("", rows[0].strip())


def _trs(value: Any, n_sub: int, path: Path) -> list[float] | None:
    if value is None:
        return None
    try:
        arr = np.asarray(value, dtype=float).ravel()
    except (TypeError, ValueError):
        raise InputError(f"{path}: TR is {value!r}, not a number") from None
    if arr.size == 0:
        return None
    if arr.size not in (1, n_sub):
        raise InputError(f"{path}: {arr.size} TRs for {n_sub} subjects (GIFT allows one, or one per subject)")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise InputError(f"{path}: TR {arr.tolist()} is not a positive number of seconds")
    return [float(t) for t in np.broadcast_to(arr, (n_sub,))]


def subject_id(path_text: str, regex: re.Pattern[str]) -> str | None:
    """The subject ID in an input file path (Windows separators read as ``/``), or None."""
    m = regex.search(path_text.replace("\\", "/"))
    if m is None:
        return None
    return (m.group(1) if regex.groups else m.group(0)) or None


def _ids_from_files(files: list[list[str]], regex: re.Pattern[str], path: Path) -> list[str]:
    ids: list[str] = []
    seen: dict[str, int] = {}
    for k, sessions in enumerate(files, start=1):
        found = {subject_id(f, regex) for f in sessions}
        if None in found:
            bad = next(f for f in sessions if subject_id(f, regex) is None)
            raise InputError(
                f"{path}: GIFT subject {k}: no subject ID in input file {bad!r} "
                f"(gift.subject_id_regex {regex.pattern!r})"
            )
        if len(found) > 1:
            raise InputError(f"{path}: GIFT subject {k}: sessions give different IDs {sorted(found)}")  # type: ignore[type-var]
        sid = found.pop()
        assert sid is not None
        if sid in seen:
            raise InputError(f"{path}: GIFT subjects {seen[sid]} and {k} both have subject ID {sid}")
        seen[sid] = k
        ids.append(sid)
    return ids


def _from_mat(path: Path, regex: re.Pattern[str], *, param: bool, unique_ids: bool = True) -> GiftRun:
    var = "sesInfo" if param else "files"
    raw = load_mat(path, ["sesInfo"] if param else ["files", "numOfSub", "numOfSess"])
    if var not in raw:
        raise InputError(f"{path}: no variable {var!r} (not a GIFT {'parameter' if param else 'subject'} file?)")
    src = raw["sesInfo"] if param else raw
    if not isinstance(src, dict):
        raise InputError(f"{path}: {var} is not a MATLAB struct")
    user_input = src.get("userInput")
    user = user_input if isinstance(user_input, dict) else {}
    n_sub = _count(src.get("numOfSub", user.get("numOfSub")), "numOfSub", path)
    n_sess = _count(src.get("numOfSess", user.get("numOfSess")), "numOfSess", path)
    entries = _as_list(src.get("inputFiles", user.get("files")) if param else src.get("files"))
    if len(entries) != n_sub * n_sess:
        raise InputError(
            f"{path}: {len(entries)} input-file entries for numOfSub {n_sub} x numOfSess {n_sess} = {n_sub * n_sess}"
        )
    firsts = [_first_file(e, k, path) for k, e in enumerate(entries, start=1)]
    files = [firsts[i * n_sess : (i + 1) * n_sess] for i in range(n_sub)]
    tr = _trs(src.get("TR", user.get("TR")), n_sub, path) if param else None
    ids = _ids_from_files(files, regex, path) if unique_ids else [f"#{k}" for k in range(1, n_sub + 1)]
    return GiftRun(ids, n_sess, tr, path, files, [path])


def _counts_only(path: Path, param: bool) -> GiftRun:
    """Sessions and TRs of a GIFT run whose subject IDs come from an explicit list."""
    return _from_mat(path, re.compile(r"^(.*)$"), param=param, unique_ids=False)


def read_subject_list(path: os.PathLike[str] | str) -> list[str]:
    """Subject IDs of a subject-order file, one per line (BOM, CRLF, blank lines and ``#``
    comments handled). Line k (k-th ID) is GIFT subject k (``subNNN``)."""
    p = Path(path)
    ids = [ln.strip() for ln in read_text_lines(p, "subject list") if ln.strip() and not ln.lstrip().startswith("#")]
    if not ids:
        raise InputError(f"{p}: subject list is empty")
    seen: dict[str, int] = {}
    for k, sid in enumerate(ids, start=1):
        if sid in seen:
            raise InputError(f"{p}: subject {sid} listed twice (entries {seen[sid]} and {k})")
        seen[sid] = k
    return ids


def read_gift_run(
    directory: Path, prefix: str, id_regex: str, subjects: Path | None, subjects_explicit: bool
) -> GiftRun:
    """GIFT's subject order for an output directory.

    The parameter file, else ``<prefix>Subject.mat``, gives subjects, sessions and TRs. An
    explicitly configured ``subjects`` list gives the IDs instead (for inputs whose paths do
    not name the subject); its length must then equal GIFT's ``numOfSub``. With neither MAT
    file, the subject list (default ``<dir>/subjects.txt``) is used alone (one session).
    """
    regex = re.compile(id_regex)
    run: GiftRun | None = None
    for path, param in ((parameter_file(directory, prefix), True), (subject_file(directory, prefix), False)):
        if path.is_file():
            run = _from_mat(path, regex, param=param) if not subjects_explicit else _counts_only(path, param)
            break
    if subjects_explicit or run is None:
        if subjects is None or not subjects.is_file():
            looked = [parameter_file(directory, prefix).name, subject_file(directory, prefix).name]
            where = f"{subjects}" if subjects is not None else "gift.subjects"
            raise InputError(f"{directory}: no GIFT parameter file ({', '.join(looked)}) and no subject list {where}")
        ids = read_subject_list(subjects)
        if run is not None and len(ids) != run.n_subjects:
            raise InputError(
                f"{subjects}: {len(ids)} subjects, but GIFT's {run.source.name} has numOfSub {run.n_subjects}"
            )
        if run is None:
            return GiftRun(ids, 1, None, subjects, [], [subjects])
        return GiftRun(ids, run.n_sessions, run.tr, subjects, run.input_files, [*run.meta_files, subjects])
    return run
