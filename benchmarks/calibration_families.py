"""Every test family of the calibration, run on one replicate's per-subject gradients and inputs.

A *record* is one family's outcome on one replicate: ``n_tests`` tests of which ``n_reject`` had
p < alpha. Families whose unit is the replicate (one decision per data set: max-statistic,
classifier and "any BH rejection" tests) have ``n_tests = 1``; per-cell families (the paper's
views, uncorrected seed and subject tests, one test per layer × epoch × summary) pool their cells.
``detail`` holds rejections per weight (where a family rejects, for the layer-pattern claims).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from autospec.data.dataset import Dataset
from autospec.stats import (
    CELL_SUMMARIES,
    MAXT_SUMMARIES,
    bh_reject,
    compare_two_groups,
    cv_permutation_test,
    maxt_test,
    paper_index_tests,
    paper_step_tests,
    seed_tests,
    subject_maxt_tests,
    summarise,
)
from autospec.stats.group_spectra import group_permutation_test, matched_masks, spectra

ALPHA = 0.05
Record = dict[str, Any]


# ------------------------------------------------------------------------------ spectra tables
def group_frame(
    grads: Sequence[dict[str, np.ndarray]],
    steps: Sequence[int],
    masks: Sequence[np.ndarray],
    scale: np.ndarray | None = None,
) -> pd.DataFrame:
    """Long spectra table of the group gradients Σ_i masks[s][g, i] G_i (group g), step by step."""
    rows: list[pd.DataFrame] = []
    for step, g, m in zip(steps, grads, masks):
        for key, G in g.items():
            n = G.shape[0]
            summed = (m @ G.reshape(n, -1).astype(np.float64)).reshape(m.shape[0], *G.shape[1:])
            sv = spectra(summed)
            if scale is not None:
                sv = sv * scale[:, None]
            rows.extend(
                pd.DataFrame(
                    {
                        "step": step,
                        "key": key,
                        "stat": "grad",
                        "group": grp,
                        "index": np.arange(sv.shape[1]),
                        "value": sv[grp],
                        "rank_zero": sv[grp] == 0.0,
                    }
                )
                for grp in range(m.shape[0])
            )
    return pd.concat(rows, ignore_index=True)


def subject_spectra(grads: Sequence[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """Per-subject spectra σ(G_i), step by step: {key: (n, r)} with rank zeros set to 0."""
    return [{key: spectra(G) for key, G in g.items()} for g in grads]


def subject_frame(sv: Sequence[dict[str, np.ndarray]], steps: Sequence[int]) -> pd.DataFrame:
    """The long per-subject spectra table (group = sample index) that training runs write."""
    rows = []
    for step, s in zip(steps, sv):
        for key, v in s.items():
            n, r = v.shape
            rows.append(
                pd.DataFrame(
                    {
                        "step": step,
                        "key": key,
                        "stat": "grad",
                        "group": np.repeat(np.arange(n), r),
                        "index": np.tile(np.arange(r), n),
                        "value": v.ravel(),
                        "rank_zero": v.ravel() == 0.0,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def subject_matrix(sv: Sequence[dict[str, np.ndarray]], summaries: Sequence[str]) -> np.ndarray:
    """(n, cells) per-subject summaries over every step × key × summary."""
    cols = []
    for s in sv:
        for v in s.values():
            summ = summarise(v)
            cols += [summ[name] for name in summaries]
    return np.column_stack(cols)


# ------------------------------------------------------------------------------ records
def cell_record(test: str, p: np.ndarray, keys: np.ndarray | None = None) -> Record:
    p = np.asarray(p, dtype=float)
    ok = np.isfinite(p)
    rec: Record = {"test": test, "unit": "test", "n_tests": int(ok.sum()), "n_reject": int((p[ok] < ALPHA).sum())}
    if keys is not None:
        k = np.asarray(keys)[ok]
        rej = p[ok] < ALPHA
        rec["detail"] = json.dumps({str(u): [int(rej[k == u].sum()), int((k == u).sum())] for u in np.unique(k)})
    return rec


def replicate_record(test: str, p: float, detail: dict[str, Any] | None = None) -> Record:
    ok = bool(np.isfinite(p))
    rec: Record = {"test": test, "unit": "replicate", "n_tests": int(ok), "n_reject": int(ok and p < ALPHA), "p": p}
    if detail:
        rec["detail"] = json.dumps(detail)
    return rec


def bh_any_record(test: str, p: np.ndarray) -> Record:
    p = np.asarray(p, dtype=float)
    if not np.isfinite(p).any():
        return replicate_record(test, float("nan"))
    rec = replicate_record(test, 0.0 if bh_reject(p, ALPHA).any() else 1.0)
    rec.pop("p")
    return rec


def _welch_p(F: np.ndarray, in_a: np.ndarray) -> np.ndarray:
    res = compare_two_groups(F[in_a], F[~in_a], n_resamples=0)
    p: np.ndarray = res["p_welch"]
    return p


def _cell_keys(sv: Sequence[dict[str, np.ndarray]], summaries: Sequence[str]) -> np.ndarray:
    return np.array([k for s in sv for k in s for _ in summaries])


def _fwer_detail(res: Any, keys: np.ndarray) -> dict[str, Any]:
    hit = np.nan_to_num(res.p_fwer, nan=1.0) < ALPHA
    return {"keys_hit": sorted({str(k) for k in keys[hit]})}


# ------------------------------------------------------------------------------ families
def group_families(bundles: Sequence[Any], in_a: np.ndarray, rep_seed: int, perms: int) -> list[Record]:
    """The paper's views (raw, size-matched, per-group normalised), seed-level and group-permutation tests."""
    n = len(in_a)
    steps = bundles[0].steps
    raw = np.vstack([in_a, ~in_a]).astype(float)
    sizes = np.array([in_a.sum(), (~in_a).sum()], dtype=float)
    match_rng = np.random.default_rng([rep_seed, 77])
    matched = [matched_masks(in_a, match_rng) for _ in steps]  # same subsets for every seed
    frames = {
        "raw": [group_frame(b.grads, steps, [raw] * len(steps)) for b in bundles],
        "matched": [group_frame(b.grads, steps, matched) for b in bundles],
    }
    pergroup = group_frame(bundles[0].grads, steps, [raw] * len(steps), scale=n / sizes)
    out = []
    for tag, df in (("", frames["raw"][0]), ("_matched", frames["matched"][0]), ("_pergroup", pergroup)):
        a = paper_step_tests(df)
        out.append(cell_record(f"paper_step{tag}", a["p"].to_numpy(), a["key"].to_numpy()))
        b = paper_index_tests(df)
        out.append(cell_record(f"paper_index{tag}", b["p"].to_numpy(), b["key"].to_numpy()))
    if len(bundles) >= 2:
        s = seed_tests(frames["raw"], group_sizes={0: int(sizes[0]), 1: int(sizes[1])}, n_resamples=0)
        out.append(cell_record("seed_welch", s["p_welch"].to_numpy(), s["key"].to_numpy()))
        out.append(bh_any_record("seed_welch_bh", s["p_welch"].to_numpy()))
        m = seed_tests(frames["matched"], n_resamples=0)
        out.append(cell_record("seed_matched_welch", m["p_welch"].to_numpy(), m["key"].to_numpy()))
    cells = {f"{k}@{st}": G for st, g in zip(steps, bundles[0].grads) for k, G in g.items()}
    summ = {name: (lambda v, name=name: summarise(v)[name]) for name in CELL_SUMMARIES}
    gp = group_permutation_test(cells, in_a, summ, n_resamples=perms, rng=[rep_seed, 5])
    keys = np.array([c.split("@")[0] for c in gp["cells"]])  # type: ignore[union-attr]
    out.append(cell_record("group_perm", np.asarray(gp["p"]), keys))
    out.append(replicate_record("group_perm_maxt", float(gp["p_global"])))  # type: ignore[arg-type]
    return out


def subject_families(
    bundles: Sequence[Any],
    in_a: np.ndarray,
    rep_seed: int,
    *,
    perms: int,
    cv_perms: int,
    covariates: np.ndarray | None = None,
) -> tuple[list[Record], np.ndarray]:
    """Subject-level families on the per-subject spectra of seed 0 (and averaged over seeds)."""
    steps = bundles[0].steps
    sv = [subject_spectra(b.grads) for b in bundles]
    out = []
    Fc = subject_matrix(sv[0], CELL_SUMMARIES)
    p = _welch_p(Fc, in_a)
    out.append(cell_record("subject_welch", p, _cell_keys(sv[0], CELL_SUMMARIES)))
    out.append(bh_any_record("subject_bh", p))
    # the shipped table function on the long table a training run writes (group 0 = HC = in_a)
    table = subject_maxt_tests(
        subject_frame(sv[0], steps), dict(enumerate(np.where(in_a, 0, 1))), n_resamples=perms, seed=rep_seed
    )
    hits = table[table["p_fwer"] < ALPHA]
    detail = {
        "keys_hit": sorted(set(hits["key"])),
        "cells_hit": sorted({f"{k}@{s}" for k, s in zip(hits["key"], hits["step"])}),
    }
    out.append(replicate_record("subject_maxt", float(table["p_global"].iloc[0]), detail))
    F = subject_matrix(sv[0], MAXT_SUMMARIES)
    if covariates is not None:  # Freedman–Lane with age and sex
        r = maxt_test(F, in_a, covariates, n_resamples=perms, rng=[rep_seed, 29])
        out.append(replicate_record("subject_maxt_cov", r.p_global))
    if len(sv) > 1:
        Favg = np.mean([subject_matrix(s, MAXT_SUMMARIES) for s in sv], axis=0)
        r = maxt_test(Favg, in_a, n_resamples=perms, rng=[rep_seed, 11])
        out.append(
            replicate_record("subject_maxt_seedavg", r.p_global, _fwer_detail(r, _cell_keys(sv[0], MAXT_SUMMARIES)))
        )
    cv = cv_permutation_test(F, in_a, n_resamples=cv_perms, rng=[rep_seed, 13])
    out.append(replicate_record("subject_cv", cv.p, {"balanced_accuracy": cv.score}))
    return out, F


def retrain_record(
    observed: np.ndarray,
    in_a: np.ndarray,
    null_features: Callable[[np.ndarray], np.ndarray],
    *,
    rng: np.random.Generator,
    n_resamples: int,
) -> Record:
    """Max-|t| with its null from networks retrained on permuted labels (valid for a classifier)."""

    def max_t(F: np.ndarray, a: np.ndarray) -> float:
        r = maxt_test(F, a, n_resamples=0)
        return float(np.nanmax(np.abs(r.t))) if np.isfinite(r.t).any() else float("nan")

    t_obs = max_t(observed, in_a)
    null = []
    for _ in range(n_resamples):
        perm = rng.permutation(in_a)
        null.append(max_t(null_features(perm), perm))
    null_arr = np.asarray(null)
    p = (1.0 + float((null_arr >= t_obs * (1 - 1e-10)).sum())) / (n_resamples + 1.0)
    return replicate_record("subject_maxt_retrain", p)


# ------------------------------------------------------------------------------ raw inputs
def input_features(ds: Dataset) -> dict[str, np.ndarray]:
    """The raw-input features a researcher would test without a network, per data kind."""
    X = ds.X.reshape(ds.n, -1).astype(np.float64)
    kind = ds.meta.get("kind")
    if kind == "timecourses":
        tc = ds.X.astype(np.float64)  # (n, T, C)
        c = tc.shape[2]
        iu = np.triu_indices(c, 1)
        fnc = np.array([np.arctanh(np.clip(np.corrcoef(s.T)[iu], -0.999999, 0.999999)) for s in tc])
        sv = np.linalg.svd(tc, compute_uv=False)
        return {"input": fnc, "input_spectrum": np.log(sv)}
    return {"input": X}


def input_families(ds: Dataset, in_a: np.ndarray, rep_seed: int, *, perms: int, cv_perms: int) -> list[Record]:
    feats = input_features(ds)
    X = feats["input"]
    keep = np.ptp(X, axis=0) > 0
    X = X[:, keep]
    p = _welch_p(X, in_a)
    out = [cell_record("input_welch", p), bh_any_record("input_bh", p)]
    out.append(replicate_record("input_maxt", maxt_test(X, in_a, n_resamples=perms, rng=[rep_seed, 17]).p_global))
    cv = cv_permutation_test(X, in_a, n_resamples=cv_perms, rng=[rep_seed, 19])
    out.append(replicate_record("input_cv", cv.p, {"balanced_accuracy": cv.score}))
    if "input_spectrum" in feats:
        r = maxt_test(feats["input_spectrum"], in_a, n_resamples=perms, rng=[rep_seed, 23])
        out.append(replicate_record("input_spectrum_maxt", r.p_global))
    return out
