"""What every kind's preprocessing shares: labels, group ids, base metadata, covariates."""

from __future__ import annotations

from typing import Any

from .cohort import CohortConfig
from .subjects import CohortSubjects, cohort_subjects


def dataset_fields(subs: CohortSubjects) -> dict[str, Any]:
    """``y``, ``groups``, the sorted name lists, subject ids and covariates of a Dataset."""
    group_names = sorted(set(subs.groups))
    class_names = sorted(set(subs.labels))
    return {
        "groups": [group_names.index(g) for g in subs.groups.loc[subs.ids]],
        "y": [class_names.index(c) for c in subs.labels.loc[subs.ids]],
        "group_names": group_names,
        "class_names": class_names,
        "subject_ids": list(subs.ids),
        "covariates": subs.covariates,
    }


def subjects_for(cfg: CohortConfig, kind: str, subjects: CohortSubjects | None) -> CohortSubjects:
    if subjects is None:
        return cohort_subjects(cfg, kind)
    if subjects.kind != kind:
        raise ValueError(f"subjects were selected for kind {subjects.kind!r}, not {kind!r}")
    return subjects


def base_meta(cfg: CohortConfig, kind: str, subs: CohortSubjects) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "kind": kind,
        "cohort": cfg.name,
        "n_subjects": len(subs),
        "left_out": {k: v for k, v in subs.ignored.items() if v},
    }
    if cfg.covariates:
        meta["covariates"] = [{"name": c.name, "column": c.column, "type": c.type} for c in cfg.covariates]
    return meta
