"""The final ordered subject list of a cohort for one data kind, with its data files.

Subjects come from the phenotype table; every kept subject must have data and every subject
with data must have a phenotype row, unless it was deliberately left out (``exclude``,
``Disenrolled``, a group outside ``groups.keep``). GIFT files are bound to subjects by their
``sub<k>`` index and GIFT's own subject list, never by position among the kept subjects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from . import gift, gift_run
from .cohort import CohortConfig, FreeSurferConfig, GiftConfig
from .covariates import read_covariates
from .freesurfer import aseg_stats_path, subjects_dir_entries
from .kinds import BLOCK_OF_KIND, KINDS
from .phenotype import assign_groups, read_phenotype

log = logging.getLogger(__name__)

TR_TOLERANCE = 1e-3  # s


@dataclass
class CohortSubjects:
    """The final subjects of a cohort for one data kind, in order, with their files."""

    cohort: str
    kind: str
    ids: list[str]
    groups: pd.Series  # group name per subject, index = ids
    labels: pd.Series  # class name per subject, index = ids
    files: dict[str, tuple[Path, ...]]  # subject -> data file(s), one per session
    meta_files: list[Path]  # phenotype, GIFT parameter files, subject list, ...
    ignored: dict[str, list[str]] = field(default_factory=dict)  # why -> subjects left out
    covariates: dict[str, np.ndarray] | None = None  # name -> one value per subject (ids order)
    tr: dict[str, float] = field(default_factory=dict)  # time courses: each subject's TR (GIFT's)
    gift_index: dict[str, int] = field(default_factory=dict)  # subject -> GIFT subject k

    def __len__(self) -> int:
        return len(self.ids)

    def input_files(self) -> list[Path]:
        """Every input file the subject list and data came from (for manifests), no repeats."""
        out: list[Path] = []
        for p in [*self.meta_files, *(f for s in self.ids for f in self.files[s])]:
            if p not in out:
                out.append(p)
        return out


def _freesurfer_data(fs: FreeSurferConfig) -> dict[str, tuple[Path, ...]]:
    if fs.table is not None:
        from .freesurfer import read_asegstats2table

        return dict.fromkeys(read_asegstats2table(fs.table, fs.table_sep).index, (fs.table,))
    assert fs.subjects_dir is not None
    return {sid: (f,) for sid, f in subjects_dir_entries(fs.subjects_dir, fs.longitudinal).items()}


def _sessions(g: GiftConfig, n_sessions: int) -> list[int]:
    return list(range(1, n_sessions + 1)) if g.sessions == "all" else [int(g.sessions)]


def _gift_data(
    cfg: CohortConfig, kind: str, excluded: set[str]
) -> tuple[list[str], dict[str, tuple[Path, ...]], gift_run.GiftRun]:
    g = cfg.gift
    assert g is not None
    run = gift_run.read_gift_run(g.dir, g.prefix, g.subject_id_regex, g.subjects, g.subjects_explicit)
    n_sessions = run.n_sessions
    part = gift.TIMECOURSES if kind == "timecourses" else gift.COMPONENTS
    if run.source == g.subjects and not run.input_files:  # plain list: sessions from the files
        found = gift.scan_subject_files(g.dir, g.prefix, part)
        n_sessions = max([s for _, s in found] or [1])
        run.n_sessions = n_sessions
    files = gift.bind_subject_files(
        g.dir,
        g.prefix,
        part,
        run.subject_ids,
        n_sessions=n_sessions,
        source=run.source,
        sessions=_sessions(g, n_sessions),
        may_miss=excluded,
    )
    return run.subject_ids, files, run


def resolve_trs(g: GiftConfig, run: gift_run.GiftRun, ids: list[str]) -> dict[str, float]:
    """Each subject's TR: GIFT's record, checked against ``gift.tr`` by ``gift.tr_policy``."""
    where = run.source
    index = {sid: k for k, sid in enumerate(run.subject_ids)}
    if run.tr is None:
        if g.tr is None:
            raise InputError(f"field gift.tr: not set, and GIFT's {where.name} records no TR; set gift.tr (seconds)")
        return dict.fromkeys(ids, g.tr)
    recorded = {sid: run.tr[index[sid]] for sid in ids}
    if g.tr is None:
        distinct = sorted(set(recorded.values()))
        if len(distinct) > 1:
            odd = next(s for s in ids if recorded[s] != recorded[ids[0]])
            raise InputError(
                f"subject {odd}: TR {recorded[odd]:g} s in {where}, subject {ids[0]} has {recorded[ids[0]]:g} s; "
                f"set gift.tr (the target) and gift.tr_policy: resample, or exclude subjects"
            )
        return recorded
    if g.tr_policy == "use_config":
        differ = [s for s in ids if abs(recorded[s] - g.tr) > TR_TOLERANCE]
        if differ:
            log.warning(
                "gift.tr_policy use_config: gift.tr %g s used for %d subject(s) whose TR in %s differs (e.g. %s: %g s)",
                g.tr,
                len(differ),
                where,
                differ[0],
                recorded[differ[0]],
            )
        return dict.fromkeys(ids, g.tr)
    if g.tr_policy == "error":
        for s in ids:
            if abs(recorded[s] - g.tr) > TR_TOLERANCE:
                raise InputError(
                    f"subject {s}: TR {recorded[s]:g} s in {where}, config gift.tr is {g.tr:g} s "
                    f"(gift.tr_policy: resample or use_config to proceed)"
                )
    return recorded  # resample: preprocessing brings each subject to gift.tr


def _orphans_and_missing(
    cfg: CohortConfig,
    kept: list[str],
    data_ids: list[str],
    known: set[str],
    where: str,
    *,
    why_missing: Callable[[str], str] | None = None,
) -> None:
    data_set = set(data_ids)
    missing = [s for s in kept if s not in data_set]
    if missing:
        why = why_missing(missing[0]) if why_missing else where
        raise InputError(f"subject {missing[0]}: in phenotype {cfg.phenotype} but {why}")
    orphans = [s for s in data_ids if s not in known]
    if orphans:
        raise InputError(
            f"subject {orphans[0]}: has data but no row in phenotype {cfg.phenotype} "
            f"(data: {where}; add it there or to exclude)"
        )


@dataclass
class _BoundData:
    """The kept subjects bound to their data files, in the data kind's order."""

    files: dict[str, tuple[Path, ...]]  # every subject with data -> its file(s)
    data_ids: list[str]  # every subject with data (kept or not)
    order: list[str]  # the kept subjects, in final order
    meta_files: list[Path] = field(default_factory=list)
    tr: dict[str, float] = field(default_factory=dict)
    gift_index: dict[str, int] = field(default_factory=dict)


def _bind_volumes(cfg: CohortConfig, kept: list[str], known: set[str]) -> _BoundData:
    fs = cfg.freesurfer
    assert fs is not None
    files = _freesurfer_data(fs)
    data_ids = list(files)
    where = str(fs.table if fs.table is not None else fs.subjects_dir)

    def missing_why(sid: str) -> str:
        if fs.table is not None:
            return f"no row in {fs.table}"
        assert fs.subjects_dir is not None
        d = fs.subjects_dir / sid
        return f"{aseg_stats_path(fs.subjects_dir, sid)} not found" if d.is_dir() else f"no FreeSurfer directory {d}"

    _orphans_and_missing(cfg, kept, data_ids, known, where, why_missing=missing_why)
    return _BoundData(files=files, data_ids=data_ids, order=kept)


def _bind_gift(cfg: CohortConfig, kind: str, kept: list[str], known: set[str], excluded: set[str]) -> _BoundData:
    listed, files, run = _gift_data(cfg, kind, excluded)
    _orphans_and_missing(cfg, kept, listed, known, f"not in GIFT's subject list {run.source} (no data)")
    kept_set = set(kept)
    order = [s for s in listed if s in kept_set]
    bound = _BoundData(
        files=files,
        data_ids=listed,
        order=order,
        meta_files=list(run.meta_files),
        gift_index={s: listed.index(s) + 1 for s in order},
    )
    if kind == "timecourses" and order:
        assert cfg.gift is not None
        bound.tr = resolve_trs(cfg.gift, run, order)
    return bound


def cohort_subjects(cfg: CohortConfig, kind: str) -> CohortSubjects:
    """Final ordered subjects of ``cfg`` for ``kind`` (volumes | timecourses | spatialmaps).

    Order: the phenotype's (volumes) or GIFT's subject order (time courses, spatial maps).
    """
    if kind not in KINDS:
        raise InputError(f"unknown data kind {kind!r} (use one of {', '.join(KINDS)})")
    need = BLOCK_OF_KIND[kind]
    if (cfg.freesurfer if need == "freesurfer" else cfg.gift) is None:
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
    bound = _bind_volumes(cfg, kept, known) if kind == "volumes" else _bind_gift(cfg, kind, kept, known, excluded)
    order = bound.order
    stray = sorted(excluded - set(pheno.index) - set(ignored["disenrolled"]) - set(bound.data_ids))
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
    covariates = read_covariates(pheno, cfg.covariates, order) if cfg.covariates else None
    return CohortSubjects(
        cohort=cfg.name,
        kind=kind,
        ids=order,
        groups=groups,
        labels=labels,
        files={s: bound.files[s] for s in order},
        meta_files=[cfg.phenotype, *bound.meta_files],
        ignored=ignored,
        covariates=covariates,
        tr=bound.tr,
        gift_index=bound.gift_index,
    )
