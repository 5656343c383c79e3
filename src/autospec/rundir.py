"""A training run directory: its layout (:class:`RunDir`, the one place its file names are
written) and the readers shared by the statistics and the figures.

A run directory (``autospec train --out DIR``) holds ``spectra.parquet`` (and optionally
``subject_spectra.parquet``), ``run.json`` (group names and sizes among its metadata) and
``subjects.tsv`` (sample index -> subject id, group). Every reader raises ``InputError`` naming
the file when it is malformed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import InputError
from .spectral.store import REQUIRED_COLUMNS

#: the columns every spectra file has, as the spectral store defines them (``rank_zero`` is
#: optional: files written before it existed read as all False)
SPECTRA_COLUMNS = tuple(REQUIRED_COLUMNS)


@dataclass(frozen=True)
class RunDir:
    """The files of one run directory. ``RunDir(d).spectra`` is ``d/spectra.parquet``, etc.

    Outputs (written at the end of a run, each atomically): ``spectra``, ``subject_spectra``,
    ``subjects``, ``metrics``, ``model``, ``run_json``, ``manifest``. Resume state (removed when
    the run ends): ``checkpoint`` and the ``checkpoint_parts`` directory.
    """

    path: Path

    def __init__(self, path: os.PathLike[str] | str) -> None:
        object.__setattr__(self, "path", Path(path))

    @property
    def spectra(self) -> Path:
        return self.path / "spectra.parquet"

    @property
    def subject_spectra(self) -> Path:
        return self.path / "subject_spectra.parquet"

    @property
    def subjects(self) -> Path:
        return self.path / "subjects.tsv"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.tsv"

    @property
    def model(self) -> Path:
        return self.path / "model.pt"

    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    @property
    def manifest(self) -> Path:
        return self.path / "manifest.json"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def checkpoint_parts(self) -> Path:
        return self.path / "checkpoint.parts"

    @property
    def outputs(self) -> tuple[Path, ...]:
        """Every final output a run may write (which ones it writes depends on its config)."""
        return (
            self.spectra,
            self.subject_spectra,
            self.subjects,
            self.metrics,
            self.model,
            self.run_json,
            self.manifest,
        )


def read_run_json(run_dir: Path) -> dict[str, Any]:
    p = RunDir(run_dir).run_json
    if not p.is_file():
        return {}
    try:
        meta: dict[str, Any] = json.loads(p.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{p}: not valid JSON ({err.msg} at line {err.lineno})") from None
    return meta


def _id_map(value: Any, cast: Callable[[Any], Any]) -> dict[int, Any]:
    """Accept a list (index = id), {id: v} or {name: id} (names only) or [{id:, name:}]."""
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            return {int(v.get("id", i)): cast(v.get("name", v.get("size", v.get("n")))) for i, v in enumerate(value)}
        return {i: cast(v) for i, v in enumerate(value)}
    if isinstance(value, dict):
        if all(str(k).lstrip("-").isdigit() for k in value):
            return {int(k): cast(v) for k, v in value.items()}
        if cast is str and all(isinstance(v, int) for v in value.values()):
            return {int(v): str(k) for k, v in value.items()}
    return {}


def _lookup(meta: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for scope in (meta, meta.get("dataset") or {}, meta.get("data") or {}):
        if isinstance(scope, dict):
            for k in keys:
                if k in scope:
                    return scope[k]
    return None


def run_group_names(run_dir: Path) -> dict[int, str]:
    """Group names from run.json (``groups`` / ``group_names``), else {}."""
    return _id_map(_lookup(read_run_json(run_dir), ("groups", "group_names")), str)


def read_subjects(path: Path) -> pd.DataFrame:
    """subjects.tsv: ``index`` (sample index in subject_spectra) and ``group`` (id or name)."""
    try:
        df = pd.read_csv(path, sep="\t")
    except (OSError, pd.errors.ParserError) as err:
        raise InputError(f"{path}: cannot read subjects table ({err})") from None
    missing = [c for c in ("index", "group") if c not in df.columns]
    if missing:
        raise InputError(f"{path}: subjects table lacks column(s) {missing}")
    return df


def subject_group_ids(subjects: pd.DataFrame, names: dict[int, str], path: Path) -> pd.Series:
    """Sample index -> group id; the ``group`` column may hold ids or group names."""
    g = subjects["group"]
    if pd.api.types.is_integer_dtype(g):
        return pd.Series(g.to_numpy(), index=subjects["index"].to_numpy())
    ids = {str(v): k for k, v in names.items()}
    names = dict(sorted(names.items()))
    unknown = sorted(set(g.astype(str)) - set(ids))
    if unknown:
        raise InputError(
            f"{path}: group name(s) {unknown} are not among the known groups {names}; "
            "pass --group-names in group-id order"
        )
    return pd.Series(g.astype(str).map(ids).to_numpy(dtype=int), index=subjects["index"].to_numpy())


def run_group_sizes(run_dir: Path, names: dict[int, str] | None = None) -> dict[int, int]:
    """Group sizes from run.json (``group_sizes``/``group_counts``) or subjects.tsv, else {}."""
    sizes = _id_map(_lookup(read_run_json(run_dir), ("group_sizes", "group_counts")), int)
    if sizes:
        return sizes
    subj = RunDir(run_dir).subjects
    if subj.is_file():
        names = names or run_group_names(Path(run_dir))
        try:
            ids = subject_group_ids(read_subjects(subj), names, subj)
        except InputError:
            return {}
        return {int(k): int(v) for k, v in ids.value_counts().items()}
    return {}


def resolve_group_names(
    explicit: dict[int, str] | None, run_dirs: Iterable[os.PathLike[str] | str], ids: Iterable[Any]
) -> dict[int, str]:
    """Explicit names win, then run.json, then ``group0``, ``group1``, ..."""
    names: dict[int, str] = {}
    for d in run_dirs:
        names = run_group_names(Path(d)) or names
        if names:
            break
    names.update(explicit or {})
    return {int(i): names.get(int(i), f"group{int(i)}") for i in ids if int(i) >= 0}


def load_spectra(path: Path) -> pd.DataFrame:
    if not Path(path).is_file():
        raise InputError(f"{path}: spectra file not found")
    try:
        df = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a non-Parquet file
        raise InputError(f"{path}: not a readable Parquet spectra file ({type(err).__name__})") from None
    missing = [c for c in SPECTRA_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: spectra file lacks column(s) {missing}")
    if "rank_zero" not in df.columns:
        df["rank_zero"] = False
    return df
