"""Cohort configuration: load, validate (JSON-schema, defaults filled) and resolve paths.

The final ordered subject list of a cohort for one data kind is
:func:`autospec.data.subjects.cohort_subjects` (re-exported here).

A cohort config file holds a top-level ``cohorts:`` mapping of name -> block (other top-level
keys are ignored, so the workflow config can hold it). The block's schema is
``autospec/schemas/cohort.schema.yaml``; docs/cohorts.md explains every field.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from ..errors import InputError
from ..safe_yaml import load_yaml
from ..validation import describe, fill_and_validate, more_problems
from .subjects import KINDS, CohortSubjects, cohort_subjects

__all__ = [
    "KINDS",
    "CohortConfig",
    "CohortSubjects",
    "FreeSurferConfig",
    "GiftConfig",
    "SpatialMapOptions",
    "TimecourseOptions",
    "cohort_schema",
    "cohort_subjects",
    "load_cohort_config",
    "raw_input_files",
]

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def cohort_schema() -> dict[str, Any]:
    """The cohort-block JSON-schema (a dict), read from the installed package."""
    text = resources.files("autospec").joinpath("schemas/cohort.schema.yaml").read_text()
    return yaml.safe_load(text)


@dataclass
class TimecourseOptions:
    detrend: bool
    low_pass: float | None
    high_pass: float | None
    standardize: str | None
    length_policy: str
    length: int | None


@dataclass
class SpatialMapOptions:
    reduce: str
    target_shape: tuple[int, int, int] | None
    mask: Path | None


@dataclass
class FreeSurferConfig:
    subjects_dir: Path
    etiv_normalize: bool
    zscore: bool
    structures: list[str] | None


@dataclass
class GiftConfig:
    dir: Path
    prefix: str
    subjects: Path
    tr: float
    n_components: int
    components: list[int] | None
    timecourses: TimecourseOptions
    spatial_maps: SpatialMapOptions


@dataclass
class CohortConfig:
    """One validated cohort block, defaults filled, paths absolute."""

    name: str
    phenotype: Path
    phenotype_format: str
    id_column: str | None
    groups: dict[str, Any]
    label: dict[str, Any] | None
    exclude: list[str]
    freesurfer: FreeSurferConfig | None
    gift: GiftConfig | None
    source: Path | None = None
    block: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The resolved block (JSON-able), with ``name`` and ``source``, for manifests."""
        return {
            "name": self.name,
            "source": str(self.source) if self.source else None,
            **copy.deepcopy(self.block),
        }


def _cohort_message(err: jsonschema.ValidationError) -> tuple[str, str]:
    path, msg = describe(err)
    if err.validator == "pattern" and err.validator_value == "^[^-]+$":
        msg = f"{err.instance!r} contains '-', which joins combined group names"
    elif err.validator == "oneOf" and path == "label":
        msg = f"{err.instance!r} is neither null nor a mapping with 'column' and 'map'"
    return path or "<block>", msg


def _resolve(base: Path, value: str | None) -> Path | None:
    if value is None:
        return None
    p = Path(os.path.expanduser(os.path.expandvars(value)))
    return p if p.is_absolute() else (base / p).resolve()


def _select(doc: Any, name: str | None, where: str) -> tuple[str, Any]:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("cohorts"), Mapping):
        raise InputError(f"{where}: no top-level 'cohorts:' mapping")
    cohorts = doc["cohorts"]
    if not cohorts:
        raise InputError(f"{where}: 'cohorts:' is empty")
    if name is None:
        if len(cohorts) != 1:
            raise InputError(f"{where}: several cohorts ({', '.join(map(str, cohorts))}); name one")
        name = next(iter(cohorts))
    if name not in cohorts:
        raise InputError(f"{where}: no cohort {name!r} (cohorts: {', '.join(map(str, cohorts))})")
    return str(name), cohorts[name]


def load_cohort_config(
    path_or_dict: os.PathLike | str | Mapping[str, Any],
    name: str | None = None,
    base_dir: os.PathLike | str | None = None,
) -> CohortConfig:
    """Load, validate and resolve one cohort.

    ``path_or_dict`` is a YAML file (or mapping) with a top-level ``cohorts:`` mapping, or a
    mapping that is itself one cohort block. ``name`` picks the cohort (optional when there is
    one). Relative paths resolve against ``base_dir``, else the config file's directory, else
    the current directory.

    Raises
    ------
    InputError
        Unreadable file, unknown cohort, or a block that breaks the schema; the message names
        the cohort and the field path (``cohort 'demo': field gift.tr: ...``).
    """
    source: Path | None = None
    if isinstance(path_or_dict, Mapping):
        doc = path_or_dict
        where = "cohort config"
    else:
        source = Path(path_or_dict).resolve()
        where = str(source)
        try:
            doc = load_yaml(source, "cohort config")
        except FileNotFoundError:
            raise InputError(f"{source}: cohort config file not found") from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise InputError(f"{source}: unreadable cohort config ({first})") from None
    if isinstance(doc, Mapping) and "cohorts" not in doc and source is None:
        name, block = name or "cohort", doc
    else:
        name, block = _select(doc, name, where)
    if not NAME_RE.match(name):
        raise InputError(f"{where}: cohort name {name!r} must match [A-Za-z0-9_-]+")
    if not isinstance(block, Mapping):
        raise InputError(f"cohort {name!r}: block must be a mapping, got {type(block).__name__}")

    block = copy.deepcopy(dict(block))
    problem = fill_and_validate(block, cohort_schema())
    if problem:
        path, msg = _cohort_message(problem[0])
        raise InputError(f"cohort {name!r}: field {path}: {msg}{more_problems(problem[1])}")
    base = Path(base_dir).resolve() if base_dir else (source.parent if source else Path.cwd())
    return _build(name, block, base, source)


def _build(name: str, block: dict[str, Any], base: Path, source: Path | None) -> CohortConfig:
    def bad(path: str, msg: str) -> InputError:
        return InputError(f"cohort {name!r}: field {path}: {msg}")

    block["phenotype"] = str(_resolve(base, block["phenotype"]))
    fs = gf = None
    if block.get("freesurfer") is not None:
        b = block["freesurfer"]
        b["subjects_dir"] = str(_resolve(base, b["subjects_dir"]))
        fs = FreeSurferConfig(Path(b["subjects_dir"]), b["etiv_normalize"], b["zscore"], b["structures"])
    if block.get("gift") is not None:
        b = block["gift"]
        b["dir"] = str(_resolve(base, b["dir"]))
        b["subjects"] = str(_resolve(base, b["subjects"]) or Path(b["dir"]) / "subjects.txt")
        comps = b["components"]
        if comps is not None and max(comps) > b["n_components"]:
            raise bad("gift.components", f"component {max(comps)} > n_components {b['n_components']}")
        tc, sm = b["timecourses"], b["spatial_maps"]
        nyquist = 0.5 / b["tr"]
        for key in ("low_pass", "high_pass"):
            if tc[key] is not None and tc[key] >= nyquist:
                raise bad(
                    f"gift.timecourses.{key}",
                    f"{tc[key]} Hz is at or above the Nyquist frequency {nyquist:g} Hz of TR {b['tr']:g} s",
                )
        if tc["low_pass"] is not None and tc["high_pass"] is not None and tc["high_pass"] >= tc["low_pass"]:
            raise bad(
                "gift.timecourses.high_pass",
                f"{tc['high_pass']} Hz must be below low_pass {tc['low_pass']} Hz",
            )
        if sm["mask"] is not None:
            sm["mask"] = str(_resolve(base, sm["mask"]))
        gf = GiftConfig(
            dir=Path(b["dir"]),
            prefix=b["prefix"],
            subjects=Path(b["subjects"]),
            tr=float(b["tr"]),
            n_components=b["n_components"],
            components=comps,
            timecourses=TimecourseOptions(
                tc["detrend"],
                tc["low_pass"],
                tc["high_pass"],
                tc["standardize"] or None,
                tc["length_policy"],
                tc["length"],
            ),
            spatial_maps=SpatialMapOptions(
                sm["reduce"],
                tuple(sm["target_shape"]) if sm["target_shape"] else None,
                Path(sm["mask"]) if sm["mask"] else None,
            ),
        )
    if fs is None and gf is None:
        raise bad("freesurfer/gift", "a cohort needs a freesurfer block, a gift block, or both")
    return CohortConfig(
        name=name,
        phenotype=Path(block["phenotype"]),
        phenotype_format=block["phenotype_format"],
        id_column=block["id_column"],
        groups=block["groups"],
        label=block["label"],
        exclude=[str(s) for s in block["exclude"]],
        freesurfer=fs,
        gift=gf,
        source=source,
        block=block,
    )


def raw_input_files(cfg: CohortConfig, kind: str) -> list[Path]:
    """Every raw file one kind of a cohort is made from (phenotype, subject lists, data files).

    The workflow lists them as inputs so that Snakemake reruns exactly the dependent jobs when
    one changes; found by globbing, so a file added or removed changes the list too.

    Raises
    ------
    InputError
        ``kind`` is unknown or needs a block (freesurfer / gift) the cohort does not have.
    """
    if kind not in KINDS:
        raise InputError(f"cohort {cfg.name!r}: unknown data kind {kind!r} (one of {', '.join(KINDS)})")
    need = "freesurfer" if kind == "volumes" else "gift"
    block = cfg.freesurfer if kind == "volumes" else cfg.gift
    if block is None:
        raise InputError(f"cohort {cfg.name!r}: {kind} needs a {need} block")
    files = [cfg.phenotype]
    if isinstance(block, FreeSurferConfig):
        files += sorted(block.subjects_dir.glob("*/stats/aseg.stats"))
    else:
        part = "timecourses" if kind == "timecourses" else "component"
        files += [block.subjects, *sorted(block.dir.glob(f"{block.prefix}_sub*_{part}_ica_s1_.nii*"))]
        if kind == "spatialmaps" and block.spatial_maps.mask:
            files.append(block.spatial_maps.mask)
    return files
