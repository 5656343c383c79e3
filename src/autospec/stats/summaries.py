"""Per-spectrum summaries, numerical-rank zeros and group pairs shared by every test family.

A spectra table is the long table the recorder writes (``step, key, stat, group, index, value``).
Values beyond a matrix's numerical rank carry no information (rounding noise where G was formed);
the spectral core stores them as exact 0.0 and flags them in a boolean ``rank_zero`` column. They
are left out of every test here. Files written before that column existed read as all-False.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

RANK_ZERO = "rank_zero"
SPECTRUM_COLUMNS = ["step", "key", "stat", "group"]

#: per-spectrum summaries (natural logs) used by the seed- and subject-level tests
SUMMARIES = {
    "log_sigma1": "log of the largest singular value, log σ₁",
    "log_nuclear": "log of the nuclear norm (sum of the singular values), log Σσ",
    "log_erank": "log of the effective rank exp(H), H the entropy of σ_k / Σσ (spectrum shape, scale-free)",
}
#: exponent of the group size in each stat's scale: G_g sums N_g rank-one terms (a group-mean
#: gradient after dividing by N_g); A_g and Δ_g stack N_g rows (RMS scale √N_g)
SIZE_EXPONENT = {"grad": 1.0, "act": 0.5, "delta": 0.5}


def rank_zero_mask(df: pd.DataFrame) -> np.ndarray:
    """Boolean mask of the rows flagged as beyond the numerical rank (all False without the column)."""
    if RANK_ZERO not in df.columns:
        return np.zeros(len(df), dtype=bool)
    return np.asarray(df[RANK_ZERO].fillna(False).to_numpy(dtype=bool))


def drop_rank_zero(df: pd.DataFrame) -> pd.DataFrame:
    """The spectra table without its numerical-rank zeros (they are never data for a test)."""
    mask = rank_zero_mask(df)
    return df if not mask.any() else df.loc[~mask]


def group_pairs(ids: Iterable[int]) -> list[tuple[int, int]]:
    """Every pair ``a < b`` of non-negative group ids (−1, the whole batch, is no group)."""
    uniq = sorted({int(i) for i in ids if int(i) >= 0})
    return list(itertools.combinations(uniq, 2))


def summarise(values: np.ndarray) -> dict[str, np.ndarray]:
    """:data:`SUMMARIES` over the last axis of an array of spectra (zeros count as absent values).

    NaN anywhere in a spectrum gives NaN; an all-zero spectrum gives -inf (log σ₁, log Σσ) and
    NaN (log effective rank).
    """
    v = np.asarray(values, dtype=np.float64)
    bad = np.isnan(v).any(axis=-1)
    v = np.where(np.isnan(v), 0.0, v)
    total = v.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = v / total[..., None]
        entropy = -np.where(share > 0, share * np.log(np.where(share > 0, share, 1.0)), 0.0).sum(axis=-1)
        out = {
            "log_sigma1": np.log(v.max(axis=-1, initial=0.0)),
            "log_nuclear": np.log(total),
            "log_erank": np.where(total > 0, entropy, np.nan),  # log(exp(H)) = H
        }
    return {k: np.where(bad, np.nan, a) for k, a in out.items()}


def spectrum_summaries(df: pd.DataFrame) -> pd.DataFrame:
    """Long table (step, key, stat, group, summary, value) of :data:`SUMMARIES` per spectrum.

    Numerical-rank zeros are left out. A spectrum holding a NaN (non-finite gradient) gives NaN;
    an all-zero one gives -inf (log σ₁, log Σσ) and NaN (log effective rank).
    """
    if df.empty:
        return pd.DataFrame(columns=[*SPECTRUM_COLUMNS, "summary", "value"])
    df = drop_rank_zero(df)
    keys = [df[c] for c in SPECTRUM_COLUMNS]
    value = df["value"].astype(np.float64)
    g = value.groupby(keys, sort=True)
    bad = value.isna().groupby(keys, sort=True).any()
    total = g.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        share = value / total.reindex(pd.MultiIndex.from_arrays(keys)).to_numpy()
        plogp = (share * np.log(share)).where(share > 0, 0.0)
        entropy = -plogp.groupby(keys, sort=True).sum()
        top = np.log(g.max().where(~bad))
        nuc = np.log(total.where(~bad))
        erank = entropy.where(~bad & (total > 0))  # log(exp(H)) = H
    out = (
        pd.concat([top.rename("log_sigma1"), nuc.rename("log_nuclear"), erank.rename("log_erank")], axis=1)
        .rename_axis(SPECTRUM_COLUMNS)
        .reset_index()
        .melt(id_vars=SPECTRUM_COLUMNS, var_name="summary", value_name="value")
    )
    return out


def normalise_by_group_size(summ: pd.DataFrame, group_sizes: Mapping[int, int] | None) -> tuple[pd.DataFrame, str]:
    """Subtract ``SIZE_EXPONENT[stat] * log N_g`` so groups of unequal size compare on a per-sample scale.

    Exact for the coherent part of a group gradient only: the incoherent (sample-to-sample) part
    of a group-mean gradient shrinks like 1/√N_g, so unequal groups still differ under the null
    (measured in benchmarks/results/calibration.md, family ``seed``). The effective rank is
    scale-free and is left as it is.
    """
    if not group_sizes:
        return summ, "none"
    out = summ.copy()
    sizes = out["group"].map({int(k): float(v) for k, v in group_sizes.items()})
    if sizes.isna().any():
        missing = sorted(set(out.loc[sizes.isna(), "group"]))
        raise ValueError(f"group sizes given for {sorted(group_sizes)} but the spectra also have groups {missing}")
    exponent = out["stat"].map(SIZE_EXPONENT).fillna(1.0)
    if "summary" in out.columns:
        exponent = exponent.where(out["summary"] != "log_erank", 0.0)
    out["value"] = out["value"] - exponent * np.log(sizes)
    return out, "group_size"
