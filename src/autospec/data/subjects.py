"""The final ordered subject list of a cohort for one data kind, with its data files.

Subjects come from the phenotype table; every kept subject must have data and every subject
with data must have a phenotype row, unless it was deliberately left out (``exclude``,
``Disenrolled``, a group outside ``groups.keep``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ..errors import InputError
from . import gift
from .freesurfer import aseg_stats_path
from .phenotype import assign_groups, read_phenotype

if TYPE_CHECKING:  # the config module imports this one
    from .cohort import CohortConfig, FreeSurferConfig

log = logging.getLogger(__name__)

KINDS = ("volumes", "timecourses", "spatialmaps")
#: SUBJECTS_DIR entries that are templates, not subjects
_FS_TEMPLATE_PREFIXES = ("fsaverage", "lh.", "rh.", "cvs_avg35")


@dataclass
class CohortSubjects:
    """The final subjects of a cohort for one data kind, in order, with their files."""

    cohort: str
    kind: str
    ids: list[str]
    groups: pd.Series  # group name per subject, index = ids
    labels: pd.Series  # class name per subject, index = ids
    files: dict[str, Path]  # subject -> data file
    meta_files: list[Path]  # phenotype, subject list, ...: inputs besides the data files
    ignored: dict[str, list[str]] = field(default_factory=dict)  # why -> subjects left out

    def __len__(self) -> int:
        return len(self.ids)

    def input_files(self) -> list[Path]:
        """Every input file the subject list and data came from (for manifests)."""
        return [*self.meta_files, *(self.files[s] for s in self.ids)]


def _freesurfer_data(cfg: FreeSurferConfig) -> dict[str, Path]:
    sdir = cfg.subjects_dir
    if not sdir.is_dir():
        raise InputError(f"field freesurfer.subjects_dir: {sdir} is not a directory")
    found = {}
    for d in sorted(sdir.iterdir()):
        if d.is_dir() and not d.name.startswith(_FS_TEMPLATE_PREFIXES):
            f = aseg_stats_path(sdir, d.name)
            if f.is_file():
                found[d.name] = f
    return found


def cohort_subjects(cfg: CohortConfig, kind: str) -> CohortSubjects:
    """Final ordered subjects of ``cfg`` for ``kind`` (volumes | timecourses | spatialmaps).

    Subjects come from the phenotype (Disenrolled rows dropped), minus ``exclude``, minus groups
    outside ``groups.keep``; every remaining subject must have data, and every subject with data
    must have a phenotype row (unless excluded, Disenrolled or outside ``keep``). Order: the
    phenotype's (volumes) or the GIFT subject list's (time courses, spatial maps).
    """
    if kind not in KINDS:
        raise InputError(f"unknown data kind {kind!r} (use one of {', '.join(KINDS)})")
    block = cfg.freesurfer if kind == "volumes" else cfg.gift
    if block is None:
        need = "freesurfer" if kind == "volumes" else "gift"
        raise InputError(f"cohort {cfg.name!r}: kind {kind!r} needs a '{need}' block in the config")

    pheno = read_phenotype(cfg.phenotype, cfg.phenotype_format, cfg.id_column)
    excluded = set(cfg.exclude)
    if not len(pheno.index.difference(list(excluded))):
        raise InputError(
            f"cohort {cfg.name!r}: no subjects left in {cfg.phenotype} (after dropping Disenrolled rows and exclude)"
        )
    groups = assign_groups(pheno, cfg.groups, exclude=excluded)
    kept = list(groups.index)
    ignored = {
        "excluded": sorted(excluded),
        "disenrolled": list(pheno.attrs["disenrolled"]),
        "not in groups.keep": [s for s in pheno.index if s not in set(kept) | excluded],
    }
    known = excluded | set(pheno.index) | set(ignored["disenrolled"])

    files: dict[str, Path] = {}
    meta_files = [cfg.phenotype]
    if kind == "volumes":
        data = _freesurfer_data(cfg.freesurfer)
        order = kept
        for sid in kept:
            if sid not in data:
                d = cfg.freesurfer.subjects_dir / sid
                what = (
                    f"{aseg_stats_path(cfg.freesurfer.subjects_dir, sid)} not found"
                    if d.is_dir()
                    else f"no FreeSurfer directory {d}"
                )
                raise InputError(f"subject {sid}: in phenotype {cfg.phenotype} but {what}")
            files[sid] = data[sid]
        data_ids = set(data)
        orphans = [s for s in data if s not in known]
    else:
        g = cfg.gift
        listed = gift.read_subject_list(g.subjects)
        meta_files.append(g.subjects)
        path_of = gift.timecourse_path if kind == "timecourses" else gift.component_path
        kept_set = set(kept)
        order = [s for s in listed if s in kept_set]
        for k, sid in enumerate(listed, start=1):
            if sid in kept_set:
                f = path_of(g.dir, g.prefix, k)
                if not f.is_file():
                    raise InputError(f"subject {sid}: GIFT file {f} not found (line {k} of {g.subjects})")
                files[sid] = f
        missing = [s for s in kept if s not in set(listed)]
        if missing:
            raise InputError(
                f"subject {missing[0]}: in phenotype {cfg.phenotype} but not in "
                f"GIFT subject list {g.subjects} (no data)"
            )
        data_ids = set(listed)
        orphans = [s for s in listed if s not in known]
    if orphans:
        raise InputError(
            f"subject {orphans[0]}: has data but no row in phenotype {cfg.phenotype} (add it there or to exclude)"
        )
    stray = sorted(excluded - set(pheno.index) - set(ignored["disenrolled"]) - data_ids)
    if stray:
        log.warning("cohort %s: excluded subject(s) not found anywhere: %s", cfg.name, ", ".join(stray))
    for why, subs in ignored.items():
        if subs:
            log.info("cohort %s: left out (%s): %s", cfg.name, why, ", ".join(subs))
    if not order:
        raise InputError(f"cohort {cfg.name!r}: no subjects left for kind {kind!r}")

    groups = groups.loc[order]
    if cfg.label is None:
        labels = groups.rename("label")
    else:
        labels = assign_groups(pheno.loc[order], {"by": [cfg.label]}, what="label")
    return CohortSubjects(cfg.name, kind, order, groups, labels, files, meta_files, ignored)
