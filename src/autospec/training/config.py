"""Run config: load a YAML file (or a mapping), validate it against ``schemas/run.schema.yaml``,
fill the defaults, resolve the dataset path, and hash what determines the run's results.

Errors are :class:`~autospec.errors.InputError` with one line naming the field, e.g.
``run config field training.lr: -1 is less than the minimum of 0 (in /x/run.yaml)``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..safe_yaml import load_yaml
from ..validation import describe, fill_and_validate, first_non_finite, more_problems, packaged_schema


def run_schema() -> dict[str, Any]:
    """The run-config JSON-schema (a dict), read from the installed package."""
    return copy.deepcopy(packaged_schema("run.schema.yaml"))


@dataclass(frozen=True)
class ModelSettings:
    family: str
    task: str
    hidden: tuple[int, ...]
    activation: str
    options: dict[str, Any]


@dataclass(frozen=True)
class TrainingSettings:
    epochs: int
    lr: float
    batch_size: int | None
    shuffle: str
    seed: int
    device: str
    threads: int | None
    deterministic: bool
    checkpoint_every: int


@dataclass(frozen=True)
class RecordingSettings:
    every: int
    schedule: dict[str, Any] | None  # {every: k} | {log: n} | {epochs: [...]} | None (= every)
    asynchronous: bool  # the run config's ``async``
    stats: tuple[str, ...]
    top_k: int | None
    groups: bool
    subjects: bool
    subject_stats: tuple[str, ...]
    subject_keys: tuple[str, ...] | None
    group_sampling: str  # "all" | "matched"
    sampling_seed: int


@dataclass(frozen=True)
class SplitSettings:
    """Which subjects are held out: ``kind`` none | holdout (``fraction``) | kfold (``k``, ``fold``)."""

    kind: str = "none"
    fraction: float | None = None
    k: int | None = None
    fold: int | None = None
    seed: int = 0

    @classmethod
    def parse(cls, value: Any, where: str = "") -> SplitSettings:
        suffix = f" (in {where})" if where else ""
        if value == "none":
            return cls()
        holdout, kfold = "holdout" in value, "kfold" in value or "fold" in value
        if holdout == kfold:
            raise InputError(
                f"run config field split: give either holdout: <fraction> or kfold: <k> with "
                f"fold: <i>, got {value!r}{suffix}"
            )
        seed = int(value.get("seed", 0))
        if holdout:
            return cls("holdout", fraction=float(value["holdout"]), seed=seed)
        if "kfold" not in value or "fold" not in value:
            raise InputError(
                f"run config field split: kfold needs both kfold: <k> and fold: <i>, got {value!r}{suffix}"
            )
        k, fold = int(value["kfold"]), int(value["fold"])
        if fold >= k:
            raise InputError(
                f"run config field split.fold: {fold} is not below kfold={k} (folds are 0..{k - 1}){suffix}"
            )
        return cls("kfold", k=k, fold=fold, seed=seed)

    @property
    def held_out(self) -> bool:
        return self.kind != "none"


@dataclass(frozen=True)
class RunSettings:
    """The run config as typed records (what the training session reads)."""

    model: ModelSettings
    training: TrainingSettings
    recording: RecordingSettings
    split: SplitSettings


def _settings(raw: dict[str, Any], where: str) -> RunSettings:
    m, t, r = raw["model"], raw["training"], raw["recording"]
    rec = {
        **{k: v for k, v in r.items() if k != "async"},
        "asynchronous": r["async"],
        "stats": tuple(r["stats"]),
        "subject_stats": tuple(r["subject_stats"]),
        "subject_keys": None if r["subject_keys"] is None else tuple(r["subject_keys"]),
    }
    settings = RunSettings(
        model=ModelSettings(**{**m, "hidden": tuple(m["hidden"]), "options": dict(m["options"])}),
        training=TrainingSettings(**t),
        recording=RecordingSettings(**rec),
        split=SplitSettings.parse(raw["split"], where),
    )
    _check_schedule(settings, where)
    if settings.recording.group_sampling == "matched" and not settings.recording.groups:
        raise InputError(
            "run config field recording.group_sampling: 'matched' draws per-group subsets, but "
            f"recording.groups is false{f' (in {where})' if where else ''}"
        )
    return settings


def _check_schedule(settings: RunSettings, where: str) -> None:
    rec, epochs = settings.recording, settings.training.epochs
    suffix = f" (in {where})" if where else ""
    if rec.schedule is not None and rec.every != 1:
        raise InputError(f"run config field recording.schedule: give either every or schedule, not both{suffix}")
    late = [e for e in (rec.schedule or {}).get("epochs", []) if e >= epochs]
    if late:
        raise InputError(
            f"run config field recording.schedule.epochs: {late[0]} is not an epoch of this run "
            f"(training.epochs = {epochs}: epochs 0..{epochs - 1}){suffix}"
        )


@dataclass
class RunConfig:
    """A validated run config: ``raw`` is the resolved mapping (defaults filled, ``data`` absolute);
    ``settings`` the same as typed records."""

    raw: dict[str, Any]
    source: Path | None = None
    settings: RunSettings = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.settings = _settings(self.raw, str(self.source) if self.source else "")

    @property
    def data(self) -> Path:
        return Path(self.raw["data"])

    @property
    def model(self) -> dict[str, Any]:
        block: dict[str, Any] = self.raw["model"]
        return block

    @property
    def training(self) -> dict[str, Any]:
        block: dict[str, Any] = self.raw["training"]
        return block

    @property
    def recording(self) -> dict[str, Any]:
        block: dict[str, Any] = self.raw["recording"]
        return block

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.raw)


def validate_run_config(doc: Any, where: str = "") -> dict[str, Any]:
    """Validate a run-config mapping and return a copy with the defaults filled."""
    suffix = f" (in {where})" if where else ""
    if not isinstance(doc, Mapping):
        raise InputError(f"run config{' ' + where if where else ''}: must be a mapping, got {type(doc).__name__}")
    block = copy.deepcopy(dict(doc))
    bad = first_non_finite(block)
    if bad is not None:  # no field takes inf or nan (lr: .inf would only diverge later)
        raise InputError(f"run config field {bad[0]}: {bad[1]} is not a finite number{suffix}")
    problem = fill_and_validate(block, run_schema())
    if problem:
        path, msg = describe(problem[0])
        raise InputError(f"run config field {path or '<top level>'}: {msg}{more_problems(problem[1])}{suffix}")
    return block


def load_run_config(
    path_or_dict: os.PathLike[str] | str | Mapping[str, Any],
    base_dir: os.PathLike[str] | str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RunConfig:
    """Load, validate and resolve a run config.

    Parameters
    ----------
    path_or_dict : a YAML file or a mapping.
    base_dir : where a relative ``data`` path resolves; default the config file's directory
        (the current directory for a mapping).
    overrides : ``{"training.threads": 2, "training.device": "cpu"}``-style dotted keys applied
        before validation (the command line's flags); ``None`` values are ignored.
    """
    source: Path | None = None
    if isinstance(path_or_dict, Mapping):
        doc: Any = copy.deepcopy(dict(path_or_dict))
    else:
        source = Path(path_or_dict).resolve()
        doc = load_yaml(source, "run config")
    where = str(source) if source else ""
    if isinstance(doc, dict):
        for dotted, value in (overrides or {}).items():
            if value is None:
                continue
            node = doc
            *parents, leaf = dotted.split(".")
            for p in parents:
                if not isinstance(node.get(p, {}), dict):
                    raise InputError(f"run config field {p}: must be a mapping{f' (in {where})' if where else ''}")
                node = node.setdefault(p, {})
            node[leaf] = value
    raw = validate_run_config(doc, where)
    base = Path(base_dir).resolve() if base_dir else (source.parent if source else Path.cwd())
    data = Path(os.path.expanduser(os.path.expandvars(raw["data"])))
    raw["data"] = str(data if data.is_absolute() else (base / data).resolve())
    return RunConfig(raw, source)


def config_hash(cfg: RunConfig, dataset_sha256: str, device_type: str) -> str:
    """sha256 of everything that determines the run's numbers.

    The resolved config without the dataset's path (its content hash stands in for it, so a
    moved dataset still matches) plus the device type the run resolved to.
    """
    raw = cfg.to_dict()
    raw.pop("data")
    raw["recording"].pop("async", None)  # where the spectra are computed does not change them
    blob = json.dumps({"config": raw, "dataset_sha256": dataset_sha256, "device": device_type}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()
