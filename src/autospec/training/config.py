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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..safe_yaml import load_yaml
from ..validation import describe, fill_and_validate, first_non_finite, more_problems, packaged_schema


def run_schema() -> dict[str, Any]:
    """The run-config JSON-schema (a dict), read from the installed package."""
    return copy.deepcopy(packaged_schema("run.schema.yaml"))


@dataclass
class RunConfig:
    """A validated run config: ``raw`` is the resolved mapping (defaults filled, ``data`` absolute)."""

    raw: dict[str, Any]
    source: Path | None = None

    @property
    def data(self) -> Path:
        return Path(self.raw["data"])

    @property
    def model(self) -> dict[str, Any]:
        return self.raw["model"]

    @property
    def training(self) -> dict[str, Any]:
        return self.raw["training"]

    @property
    def recording(self) -> dict[str, Any]:
        return self.raw["recording"]

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
    path_or_dict: os.PathLike | str | Mapping[str, Any],
    base_dir: os.PathLike | str | None = None,
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
    blob = json.dumps({"config": raw, "dataset_sha256": dataset_sha256, "device": device_type}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()
