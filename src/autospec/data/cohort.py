"""Cohort configuration: load, validate (JSON-schema, defaults filled) and resolve paths.

The final ordered subject list of a cohort for one data kind is
:func:`autospec.data.subjects.cohort_subjects` (which imports this module, never the reverse).

A cohort config file holds a top-level ``cohorts:`` mapping of name -> block (other top-level
keys are ignored, so the workflow config can hold it). The block's schema is
``autospec/schemas/cohort.schema.yaml``; docs/cohorts.md explains every field.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from ..errors import InputError
from ..safe_yaml import load_yaml
from ..validation import describe, fill_and_validate, more_problems
from . import gift, gift_run
from .kinds import BLOCK_OF_KIND, KINDS

__all__ = [
    "KINDS",
    "CohortConfig",
    "Covariate",
    "FreeSurferConfig",
    "GiftConfig",
    "SpatialMapOptions",
    "TimecourseOptions",
    "cohort_schema",
    "load_cohort_config",
    "raw_input_files",
]

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
#: builds the error for one field of the cohort being read: (field path, message) -> InputError
_Complaint = Callable[[str, str], InputError]


def cohort_schema() -> dict[str, Any]:
    """The cohort-block JSON-schema (a dict), read from the installed package."""
    text = resources.files("autospec").joinpath("schemas/cohort.schema.yaml").read_text()
    schema: dict[str, Any] = yaml.safe_load(text)
    return schema


@dataclass
class TimecourseOptions:
    detrend: bool
    low_pass: float | None
    high_pass: float | None
    standardize: str | None
    length_policy: str
    length: int | None
    constant_policy: str = "error"


@dataclass
class SpatialMapOptions:
    reduce: str
    target_shape: tuple[int, int, int] | None
    mask: Path | None


@dataclass
class FreeSurferConfig:
    subjects_dir: Path | None  # a SUBJECTS_DIR, or
    table: Path | None  # an asegstats2table output
    table_sep: str
    longitudinal: str  # skip | only
    missing_structures: str  # drop | error
    etiv_normalize: bool
    zscore: bool
    structures: list[str] | None


@dataclass
class GiftConfig:
    dir: Path
    prefix: str
    subjects: Path  # the subject-list fallback (or the explicit list)
    subjects_explicit: bool  # True: IDs from `subjects`, not from GIFT's parameter file
    subject_id_regex: str
    tr: float | None
    tr_policy: str
    sessions: int | str  # a session number, or "all"
    n_components: int
    components: list[int | str] | None
    component_labels: Path | None
    timecourses: TimecourseOptions
    spatial_maps: SpatialMapOptions

    def parameter_files(self) -> list[Path]:
        """GIFT's parameter and subject MAT-files in ``dir`` (whether present or not)."""
        return [gift_run.parameter_file(self.dir, self.prefix), gift_run.subject_file(self.dir, self.prefix)]


@dataclass
class Covariate:
    name: str
    column: str
    type: str  # numeric | categorical


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
    covariates: list[Covariate] = field(default_factory=list)
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
    path_or_dict: os.PathLike[str] | str | Mapping[str, Any],
    name: str | None = None,
    base_dir: os.PathLike[str] | str | None = None,
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
        # the bounded loader: size, depth and alias budgets; a BOM is dropped, CRLF is fine
        doc = load_yaml(source, "cohort config")
    if isinstance(doc, Mapping) and "cohorts" not in doc and source is None:
        name, block = name or "cohort", doc
    else:
        name, block = _select(doc, name, where)
    if not NAME_RE.match(name):
        raise InputError(f"{where}: cohort name {name!r} must match [A-Za-z0-9_-]+")
    if not isinstance(block, Mapping):
        raise InputError(f"cohort {name!r}: block must be a mapping, got {type(block).__name__}")

    filled = copy.deepcopy(dict(block))
    problem = fill_and_validate(filled, cohort_schema())
    if problem:
        path, msg = _cohort_message(problem[0])
        raise InputError(f"cohort {name!r}: field {path}: {msg}{more_problems(problem[1])}")
    base = Path(base_dir).resolve() if base_dir else (source.parent if source else Path.cwd())
    return _build(name, filled, base, source)


def _freesurfer(b: dict[str, Any], base: Path, bad: _Complaint) -> FreeSurferConfig:
    if (b["subjects_dir"] is None) == (b["table"] is None):
        raise bad("freesurfer", "give exactly one of subjects_dir (a SUBJECTS_DIR) and table (asegstats2table)")
    for key in ("subjects_dir", "table"):
        if b[key] is not None:
            b[key] = str(_resolve(base, b[key]))
    table = Path(b["table"]) if b["table"] else None
    sep = b["table_sep"] or ("," if table is not None and table.suffix.lower() == ".csv" else "\t")
    return FreeSurferConfig(
        subjects_dir=Path(b["subjects_dir"]) if b["subjects_dir"] else None,
        table=table,
        table_sep=sep,
        longitudinal=b["longitudinal"],
        missing_structures=b["missing_structures"],
        etiv_normalize=b["etiv_normalize"],
        zscore=b["zscore"],
        structures=b["structures"],
    )


def _check_filters(tc: dict[str, Any], tr: float | None, bad: _Complaint) -> None:
    if tr is not None:
        nyquist = 0.5 / tr
        for key in ("low_pass", "high_pass"):
            if tc[key] is not None and tc[key] >= nyquist:
                raise bad(
                    f"gift.timecourses.{key}",
                    f"{tc[key]} Hz is at or above the Nyquist frequency {nyquist:g} Hz of TR {tr:g} s",
                )
    if tc["low_pass"] is not None and tc["high_pass"] is not None and tc["high_pass"] >= tc["low_pass"]:
        raise bad("gift.timecourses.high_pass", f"{tc['high_pass']} Hz must be below low_pass {tc['low_pass']} Hz")


def _gift(b: dict[str, Any], base: Path, phenotype_format: str, bad: _Complaint) -> GiftConfig:
    b["dir"] = str(_resolve(base, b["dir"]))
    explicit = b["subjects"] is not None
    b["subjects"] = str(_resolve(base, b["subjects"]) or Path(b["dir"]) / "subjects.txt")
    if b["subject_id_regex"] is None:
        b["subject_id_regex"] = gift_run.BIDS_ID_REGEX if phenotype_format == "bids" else gift_run.DEFAULT_ID_REGEX
    try:
        re.compile(b["subject_id_regex"])
    except re.error as err:
        raise bad("gift.subject_id_regex", f"not a regular expression ({err})") from None
    numbers = [c for c in b["components"] or [] if isinstance(c, int)]
    if numbers and max(numbers) > b["n_components"]:
        raise bad("gift.components", f"component {max(numbers)} > n_components {b['n_components']}")
    if b["tr_policy"] in ("resample", "use_config") and b["tr"] is None:
        raise bad("gift.tr_policy", f"{b['tr_policy']} needs gift.tr (the TR to resample to / to use)")
    if b["component_labels"] is not None:
        b["component_labels"] = str(_resolve(base, b["component_labels"]))
    tc, sm = b["timecourses"], b["spatial_maps"]
    _check_filters(tc, b["tr"], bad)
    if sm["mask"] is not None:
        sm["mask"] = str(_resolve(base, sm["mask"]))
    return GiftConfig(
        dir=Path(b["dir"]),
        prefix=b["prefix"],
        subjects=Path(b["subjects"]),
        subjects_explicit=explicit,
        subject_id_regex=b["subject_id_regex"],
        tr=float(b["tr"]) if b["tr"] is not None else None,
        tr_policy=b["tr_policy"],
        sessions=b["sessions"],
        n_components=b["n_components"],
        components=b["components"],
        component_labels=Path(b["component_labels"]) if b["component_labels"] else None,
        timecourses=TimecourseOptions(
            tc["detrend"],
            tc["low_pass"],
            tc["high_pass"],
            tc["standardize"] or None,
            tc["length_policy"],
            tc["length"],
            tc["constant_policy"],
        ),
        spatial_maps=SpatialMapOptions(
            sm["reduce"],
            tuple(sm["target_shape"]) if sm["target_shape"] else None,
            Path(sm["mask"]) if sm["mask"] else None,
        ),
    )


def _covariates(items: list[dict[str, Any]], bad: _Complaint) -> list[Covariate]:
    out: list[Covariate] = []
    for i, c in enumerate(items):
        name = c["name"] or c["column"]
        if name in {o.name for o in out}:
            raise bad(f"covariates[{i}]", f"covariate name {name!r} used twice (set `name:` to tell them apart)")
        out.append(Covariate(name=name, column=c["column"], type=c["type"]))
    return out


def _build(name: str, block: dict[str, Any], base: Path, source: Path | None) -> CohortConfig:
    def bad(path: str, msg: str) -> InputError:
        return InputError(f"cohort {name!r}: field {path}: {msg}")

    block["phenotype"] = str(_resolve(base, block["phenotype"]))
    fs = _freesurfer(block["freesurfer"], base, bad) if block.get("freesurfer") is not None else None
    gf = _gift(block["gift"], base, block["phenotype_format"], bad) if block.get("gift") is not None else None
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
        covariates=_covariates(block["covariates"], bad),
        source=source,
        block=block,
    )


def raw_input_files(cfg: CohortConfig, kind: str) -> list[Path]:
    """Every raw file one kind of a cohort is made from: THE list of a kind's dependencies.

    Phenotype; for volumes the asegstats2table table or every ``<subject>/stats/aseg.stats``
    (``*.long.*`` directories included: the cohort's ``longitudinal`` choice may use them);
    for time courses / spatial maps GIFT's parameter and subject MAT-files (those present),
    the subject list (when present or configured), every ``<prefix>_sub<k>_<part>_ica_s<s>_``
    ``.nii``/``.nii.gz`` of every session, the component label table and the mask. The
    workflow lists them as inputs so that Snakemake reruns exactly the dependent jobs when one
    changes; found by listing the directories, so a file added or removed changes the list too.

    Raises
    ------
    InputError
        ``kind`` is unknown or needs a block (freesurfer / gift) the cohort does not have, or a
        data directory cannot be listed.
    """
    if kind not in KINDS:
        raise InputError(f"cohort {cfg.name!r}: unknown data kind {kind!r} (one of {', '.join(KINDS)})")
    need = BLOCK_OF_KIND[kind]
    block = cfg.freesurfer if need == "freesurfer" else cfg.gift
    if block is None:
        raise InputError(f"cohort {cfg.name!r}: {kind} needs a {need} block")
    files = [cfg.phenotype]
    if isinstance(block, FreeSurferConfig):
        if block.table is not None:
            return [*files, block.table]
        assert block.subjects_dir is not None
        try:
            return [*files, *sorted(block.subjects_dir.glob("*/stats/aseg.stats"))]
        except OSError as err:
            raise InputError(f"field freesurfer.subjects_dir: cannot list {block.subjects_dir} ({err})") from None
    files += [p for p in block.parameter_files() if p.is_file()]
    if block.subjects_explicit or block.subjects.is_file():
        files.append(block.subjects)
    part = gift.TIMECOURSES if kind == "timecourses" else gift.COMPONENTS
    files += [p for _, p in sorted(gift.scan_subject_files(block.dir, block.prefix, part).items())]
    if block.component_labels is not None:
        files.append(block.component_labels)
    if kind == "spatialmaps" and block.spatial_maps.mask:
        files.append(block.spatial_maps.mask)
    return files
