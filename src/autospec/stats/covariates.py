"""Covariates of a subject-level test: the design matrix, and one clear error per bad value.

A covariate is a per-subject phenotype column (age, sex, motion, site, ...). Numeric columns
enter the linear model as they are (centred); text columns are categorical and enter as
treatment-coded dummies (the alphabetically first level is the reference). A subject without a
value is an error naming the subject and the column: an analysis must never drop or impute
subjects silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

#: subjects.tsv columns that are not covariates
NON_COVARIATE_COLUMNS = ("index", "subject_id", "group", "class", "split")


class CovariateError(ValueError):
    """A covariate value is missing or unusable (the message names subject and column)."""


def covariate_columns(subjects: pd.DataFrame) -> list[str]:
    """The covariate columns of a subjects table: every column but index, subject_id, group, class, split."""
    return [str(c) for c in subjects.columns if str(c) not in NON_COVARIATE_COLUMNS]


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in ("", "nan", "na", "n/a", "none")


def _numeric(column: pd.Series) -> np.ndarray | None:
    """The column as float64 if every value parses as a number, else None (categorical)."""
    try:
        return np.asarray(pd.to_numeric(column, errors="raise"), dtype=np.float64)
    except (ValueError, TypeError):
        return None


def design_columns(
    covariates: Mapping[str, Sequence[object] | np.ndarray], subject_ids: Sequence[str]
) -> tuple[np.ndarray, list[str]]:
    """Covariates -> (N × q design block without intercept, column names).

    Numeric covariates are centred; categorical ones become ``name[level]`` dummies. Raises
    :class:`CovariateError` for a missing value (naming the first such subject and the column),
    a categorical covariate with a single level, or a constant numeric one.
    """
    ids = [str(s) for s in subject_ids]
    blocks: list[np.ndarray] = []
    names: list[str] = []
    for name, values in covariates.items():
        col = pd.Series(list(values), dtype=object)
        if len(col) != len(ids):
            raise CovariateError(f"covariate {name!r}: {len(col)} values for {len(ids)} subjects")
        for sid, v in zip(ids, col):
            if _is_missing(v):
                raise CovariateError(f"subject {sid}: covariate {name!r} is missing")
        num = _numeric(col)
        if num is not None:
            if not np.isfinite(num).all():
                sid = ids[int(np.flatnonzero(~np.isfinite(num))[0])]
                raise CovariateError(f"subject {sid}: covariate {name!r} is not a finite number")
            if np.ptp(num) == 0:
                raise CovariateError(f"covariate {name!r} has the same value for every subject")
            blocks.append((num - num.mean())[:, None])
            names.append(str(name))
            continue
        text = col.astype(str).str.strip()
        levels = sorted(set(text))
        if len(levels) < 2:
            raise CovariateError(f"covariate {name!r} has a single level ({levels[0]!r})")
        for level in levels[1:]:
            blocks.append((text.to_numpy() == level).astype(np.float64)[:, None])
            names.append(f"{name}[{level}]")
    if not blocks:
        return np.zeros((len(ids), 0)), []
    return np.hstack(blocks), names


def full_design(group: np.ndarray, nuisance: np.ndarray) -> np.ndarray:
    """[1, group indicator, nuisance]; raises CovariateError when the design is rank deficient."""
    n = len(group)
    X = np.column_stack([np.ones(n), np.asarray(group, dtype=np.float64), nuisance])
    rank = int(np.linalg.matrix_rank(X))
    if rank < X.shape[1]:
        raise CovariateError(
            f"the covariates are collinear with each other or with the group (design rank {rank} < {X.shape[1]} "
            "columns): the group effect cannot be separated from them"
        )
    if n - X.shape[1] < 2:
        raise CovariateError(f"{n} subjects leave fewer than 2 residual degrees of freedom for {X.shape[1]} columns")
    return X
