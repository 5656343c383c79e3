"""Covariates (age, sex, site, motion, ...) read from the phenotype table for the final subjects.

Each covariate is one phenotype column, ``numeric`` (float64) or ``categorical`` (text). A
value that is missing, empty, ``n/a`` or (numeric) not a finite number stops preprocessing
with one line naming the subject, the column and the file: a subject is never dropped or
imputed silently.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import InputError

if TYPE_CHECKING:
    from .cohort import Covariate

#: cell texts that mean "no value" (BIDS writes n/a)
MISSING = frozenset({"", "n/a", "na", "nan", "none", "null", "missing"})


def read_covariates(pheno: pd.DataFrame, covariates: Sequence[Covariate], ids: Sequence[str]) -> dict[str, np.ndarray]:
    """Covariate name -> one value per subject of ``ids`` (in that order).

    Numeric covariates are float64 arrays, categorical ones fixed-width unicode arrays.
    """
    where = pheno.attrs.get("path", "phenotype")
    out: dict[str, np.ndarray] = {}
    for cov in covariates:
        if cov.column not in pheno.columns:
            raise InputError(
                f"{where}: covariate column {cov.column!r} not found (columns: {', '.join(map(str, pheno.columns))})"
            )
        cells = pheno.loc[list(ids), cov.column]
        values: list[float | str] = []
        for sid, cell in cells.items():
            text = str(cell).strip()
            if text.lower() in MISSING:
                raise InputError(f"subject {sid}: covariate column {cov.column!r} is empty ({text!r}) in {where}")
            if cov.type == "numeric":
                try:
                    num = float(text)
                except ValueError:
                    num = math.nan
                if not math.isfinite(num):
                    raise InputError(
                        f"subject {sid}: covariate column {cov.column!r} has non-numeric value {text!r} in {where}"
                    )
                values.append(num)
            else:
                values.append(text)
        out[cov.name] = np.asarray(values, dtype=np.float64 if cov.type == "numeric" else str)
    return out


def covariate_records(ids: Sequence[str], covariates: dict[str, np.ndarray] | None) -> dict[str, dict[str, object]]:
    """``{name: {subject: value}}`` (JSON-able) for manifests and reports."""
    if not covariates:
        return {}
    return {name: {sid: v.item() for sid, v in zip(ids, arr)} for name, arr in covariates.items()}
