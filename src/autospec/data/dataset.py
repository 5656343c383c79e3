"""The prepared-dataset file: what preprocessing writes and training reads.

One ``.npz`` file (loaded with ``allow_pickle=False``; never unpickles) with these arrays:

=================  =========================  ==================================================
name               dtype / shape              meaning
=================  =========================  ==================================================
``X``              float32, (N, ...)          model input, samples first
``y``              int64, (N,)                class label per sample (index into class_names)
``groups``         int64, (N,)                group id per sample (index into group_names)
``subject_ids``    str, (N,)                  subject / sample identifier, unique
``class_names``    str, (C,)                  names of the classes
``group_names``    str, (K,)                  names of the groups
``meta_json``      str, ()                    JSON object: data kind, axes names, TR, ...
``covariate_names`` str, (K,)                 optional: names of the covariates, in order
``covariate_<k>``  float64 or str, (N,)       optional: covariate k (numeric: float64;
                                              categorical: fixed-width unicode)
=================  =========================  ==================================================

Every array is in the same subject order. Files written before covariates existed load with
``covariates = None``. A ``<file>.manifest.json`` beside it (see
:mod:`autospec.manifest`) records the inputs with sha256, the parameters and versions.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_output
from ..errors import InputError

REQUIRED = ("X", "y", "groups", "subject_ids", "class_names", "group_names", "meta_json")
COVARIATE_NAMES = "covariate_names"
#: ``meta["standardize"]`` value asking the trainer to standardise each feature with the mean and
#: sd of the training subjects (nothing is fitted across subjects in preprocessing)
STANDARDIZE_FEATURES = "features"


def covariate_key(k: int) -> str:
    """The array name of covariate ``k`` (0-based) in the ``.npz``."""
    return f"covariate_{k}"


@dataclass
class Dataset:
    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    subject_ids: np.ndarray
    class_names: np.ndarray
    group_names: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    #: covariate name -> one value per subject (subject_ids order): float64 (numeric) or str
    covariates: dict[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        self.X = np.ascontiguousarray(self.X, dtype=np.float32)
        self.y = np.asarray(self.y, dtype=np.int64)
        self.groups = np.asarray(self.groups, dtype=np.int64)
        self.subject_ids = np.asarray(self.subject_ids, dtype=str)
        self.class_names = np.asarray(self.class_names, dtype=str)
        self.group_names = np.asarray(self.group_names, dtype=str)
        if self.covariates is not None:
            self.covariates = {str(k): _covariate_array(v) for k, v in self.covariates.items()}
        self.validate()

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    def validate(self, where: str = "dataset") -> None:
        n = self.X.shape[0] if self.X.ndim else 0
        for name in ("y", "groups", "subject_ids"):
            arr = getattr(self, name)
            if arr.shape != (n,):
                raise InputError(f"{where}: field '{name}' has shape {arr.shape}, expected ({n},)")
        if n == 0:
            raise InputError(f"{where}: no samples")
        if not np.isfinite(self.X).all():
            bad = self.subject_ids[~np.isfinite(self.X.reshape(n, -1)).all(axis=1)]
            raise InputError(f"{where}: non-finite values in X for subject(s) {', '.join(bad[:5])}")
        if len(set(self.subject_ids.tolist())) != n:
            ids, counts = np.unique(self.subject_ids, return_counts=True)
            raise InputError(f"{where}: duplicate subject id {ids[counts > 1][0]!r}")
        for name, names in (("y", self.class_names), ("groups", self.group_names)):
            arr = getattr(self, name)
            if arr.size and (arr.min() < 0 or arr.max() >= len(names)):
                raise InputError(f"{where}: field '{name}' has ids outside 0..{len(names) - 1} ({name}_names)")
        for cname, values in (self.covariates or {}).items():
            if values.shape != (n,):
                raise InputError(f"{where}: covariate {cname!r} has shape {values.shape}, expected ({n},)")
            if values.dtype.kind == "f" and not np.isfinite(values).all():
                bad = self.subject_ids[~np.isfinite(values)][0]
                raise InputError(f"{where}: covariate {cname!r} is not finite for subject {bad}")

    def subject_table(self) -> dict[str, list[Any]]:
        """What the dataset reports about its subjects: id, group, class and every covariate."""
        table: dict[str, list[Any]] = {
            "subject_id": self.subject_ids.tolist(),
            "group": self.group_names[self.groups].tolist(),
            "class": self.class_names[self.y].tolist(),
        }
        for cname, values in (self.covariates or {}).items():
            table[cname] = values.tolist()
        return table


def _covariate_array(values: Any) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64)
    return arr.astype(str)


def save_dataset(path: os.PathLike[str] | str, ds: Dataset) -> None:
    """Write ``ds`` to ``path`` atomically (temp file, then rename)."""
    ds.validate(str(path))
    arrays = {
        "X": ds.X,
        "y": ds.y,
        "groups": ds.groups,
        "subject_ids": ds.subject_ids,
        "class_names": ds.class_names,
        "group_names": ds.group_names,
        "meta_json": np.asarray(json.dumps(ds.meta, sort_keys=True, default=str)),
    }
    if ds.covariates is not None:
        arrays[COVARIATE_NAMES] = np.asarray(list(ds.covariates), dtype=str)
        for k, values in enumerate(ds.covariates.values()):
            arrays[covariate_key(k)] = values
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, allow_pickle=False, **arrays)


def manifest_path(path: os.PathLike[str] | str) -> Path:
    """The manifest beside a prepared dataset file: ``<file>.manifest.json``."""
    return Path(f"{path}.manifest.json")


def write_prepared(
    path: os.PathLike[str] | str,
    ds: Dataset,
    command: str,
    params: dict[str, Any],
    inputs: Iterable[os.PathLike[str] | str] = (),
) -> None:
    """Save ``ds`` and its manifest (the command, its parameters, input and output hashes)."""
    from ..manifest import write_with_manifest

    def write(temps: Sequence[Path]) -> None:  # the data under its temporary name; the manifest is written beside it
        save_dataset(temps[0], ds)

    write_with_manifest([path], manifest_path(path), write, command, inputs=list(inputs), params=params)


def load_dataset(path: os.PathLike[str] | str) -> Dataset:
    """Read a prepared dataset; a missing or malformed file raises :class:`InputError`."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            missing = [k for k in REQUIRED if k not in z.files]
            if missing:
                raise InputError(f"{p}: not an autospec dataset (missing {', '.join(missing)})")
            arrays = {k: z[k] for k in REQUIRED}
            covariates = None
            if COVARIATE_NAMES in z.files:
                names = [str(n) for n in np.atleast_1d(z[COVARIATE_NAMES])]
                if len(set(names)) != len(names):
                    raise InputError(f"{p}: covariate names listed twice")
                missing = [covariate_key(k) for k in range(len(names)) if covariate_key(k) not in z.files]
                if missing:
                    raise InputError(f"{p}: covariate array {missing[0]} missing")
                covariates = {name: z[covariate_key(k)] for k, name in enumerate(names)}
    except FileNotFoundError:
        raise InputError(f"{p}: dataset file not found") from None
    except (ValueError, OSError, EOFError) as err:
        if isinstance(err, InputError):
            raise
        raise InputError(f"{p}: unreadable dataset file ({err})") from None
    try:
        meta = json.loads(str(arrays.pop("meta_json")))
    except ValueError as err:
        raise InputError(f"{p}: meta_json is not JSON ({err})") from None
    if not isinstance(meta, dict):
        raise InputError(f"{p}: meta_json is not a JSON object")
    ds = Dataset(**arrays, meta=meta, covariates=covariates)
    ds.validate(str(p))
    return ds
