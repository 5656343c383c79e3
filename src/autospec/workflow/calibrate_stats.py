"""The group-stats side of the calibration (see :mod:`.calibrate` for the design).

:func:`calibrate_stats` times ``autospec group-stats`` (no permutations) on a training
calibration's spectra replicated to more steps and seeds; :func:`permutation_throughput` times the
permutation kernel once per machine; :func:`stats_shape` reads from the calibration spectra what
the permutation cost depends on (groups, tested columns per step, subjects per group).
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .calibrate import (
    CALIBRATION_VERSION,
    Cache,
    PermutationThroughput,
    StatsCalibration,
    cost_key,
    machine,
    now,
    run_child,
)

#: the steps of the calibration spectra are replicated this many times for the second probe
STEP_FACTOR = 4


@dataclass(frozen=True)
class StatsShape:
    """What one cell's group tests consist of (from its calibration run)."""

    steps_recorded: int  # steps in the calibration spectra
    groups: list[int]
    seed_columns_per_step: int  # (summary, stat, key) columns of the seed-level tests
    subject_columns_per_step: int  # (summary, key) columns of the subject-level tests (0: none)
    subject_sizes: dict[int, int]  # subjects per group id

    def permutation_work(self, steps: int, seeds: int, permutations: int) -> list[tuple[int, int, int]]:
        """(relabelings, n, m) of every permutation test the cell's group-stats job runs."""
        out = []
        pairs = list(itertools.combinations(self.groups, 2))
        if seeds >= 2 and permutations:
            used = min(permutations, math.comb(2 * seeds, seeds))
            out += [(used, 2 * seeds, self.seed_columns_per_step * steps)] * len(pairs)
        if self.subject_columns_per_step and permutations:
            for a, b in itertools.combinations(sorted(self.subject_sizes), 2):
                na, nb = self.subject_sizes[a], self.subject_sizes[b]
                if na >= 2 and nb >= 2:
                    used = min(permutations, math.comb(na + nb, na))
                    out.append((used, na + nb, self.subject_columns_per_step * steps))
        return out


def stats_shape(run_dir: Path) -> StatsShape:
    spec = pd.read_parquet(run_dir / "spectra.parquet", columns=["step", "key", "stat", "group"])
    grp = spec[spec["group"] >= 0]
    cols = 2 * len(grp[["key", "stat"]].drop_duplicates())  # two summaries per spectrum
    sub_cols, sizes = 0, {}
    if (run_dir / "subject_spectra.parquet").is_file():
        sub = pd.read_parquet(run_dir / "subject_spectra.parquet", columns=["key", "stat"])
        sub_cols = 2 * int(sub[sub["stat"] == "grad"]["key"].nunique())
        subj = pd.read_csv(run_dir / "subjects.tsv", sep="\t")
        codes = {g: i for i, g in enumerate(sorted(subj["group"].astype(str).unique()))}
        sizes = {codes[g]: int(n) for g, n in subj["group"].astype(str).value_counts().items()}
    return StatsShape(
        steps_recorded=int(spec["step"].nunique()),
        groups=sorted(int(g) for g in grp["group"].unique()),
        seed_columns_per_step=cols,
        subject_columns_per_step=sub_cols,
        subject_sizes=sizes,
    )


def _replicate(df: pd.DataFrame, factor: int, jitter: float, rng: np.random.Generator) -> pd.DataFrame:
    """``factor`` copies of the steps one after another; values times (1 + jitter * N(0, 1))."""
    span = int(df["step"].max()) + 1
    out = pd.concat([df.assign(step=df["step"] + i * span) for i in range(factor)], ignore_index=True)
    if jitter:
        out["value"] = out["value"] * (1.0 + jitter * rng.standard_normal(len(out)))
    return out


def _probe(run_dir: Path, tmp: Path, factor: int, seeds: int, timeout: float) -> float:
    rng = np.random.default_rng(factor)
    spec = pd.read_parquet(run_dir / "spectra.parquet")
    paths = []
    for k in range(max(seeds, 1)):
        d = tmp / f"x{factor}" / f"seed{k}"
        d.mkdir(parents=True)
        _replicate(spec, factor, 0.01 if seeds > 1 else 0.0, rng).to_parquet(d / "spectra.parquet", index=False)
        if (run_dir / "run.json").is_file():
            shutil.copy(run_dir / "run.json", d / "run.json")
        paths.append(str(d / "spectra.parquet"))
    argv = [sys.executable, "-m", "autospec", "group-stats", "--spectra", *paths]
    if (run_dir / "subject_spectra.parquet").is_file():
        d = Path(paths[0]).parent
        sub = pd.read_parquet(run_dir / "subject_spectra.parquet")
        _replicate(sub, factor, 0.0, rng).to_parquet(d / "subject_spectra.parquet", index=False)
        shutil.copy(run_dir / "subjects.tsv", d / "subjects.tsv")
        argv.append(f"--subject-spectra={d / 'subject_spectra.parquet'}")
    argv += ["--out", str(tmp / f"x{factor}" / "stats"), "--permutations", "0"]
    wall, cpu, _ = run_child(argv, tmp / f"stats{factor}.log", timeout)
    return min(wall, cpu)  # with a core to itself (numpy may use more than one thread: then wall)


def calibrate_stats(
    run_dir: Path, train_key: str, seeds: int, cache: Cache, timeout: float = 3600.0
) -> StatsCalibration:
    """(Cached) ``t = c0 + c1 * steps`` of one cell's group-stats job without permutations."""
    key = cost_key({"v": CALIBRATION_VERSION, "train": train_key, "seeds": seeds, "factor": STEP_FACTOR})
    hit = cache.get("stats", key, StatsCalibration)
    if hit is not None:
        return hit
    k = stats_shape(run_dir).steps_recorded
    before = list(os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="autospec-calibrate-stats-") as tmp:
        t1 = _probe(run_dir, Path(tmp), 1, seeds, timeout)
        t4 = _probe(run_dir, Path(tmp), STEP_FACTOR, seeds, timeout)
    c1 = max(0.0, (t4 - t1) / ((STEP_FACTOR - 1) * k))
    cal = StatsCalibration(
        key=key,
        c0=max(0.0, t1 - c1 * k),
        c1=c1,
        points=[[k, t1], [STEP_FACTOR * k, t4]],
        loadavg_before=before,
        loadavg_after=list(os.getloadavg()),
        measured_at=now(),
    )
    cache.put("stats", cal)
    return cal


def permutation_throughput(cache: Cache, m: int = 2000, relabelings: int = 400) -> PermutationThroughput:
    """(Cached per machine) cost of one relabeling: ``m * (a + b * n)`` s, fitted at n = 20 and 160."""
    from ..stats.inference import permutation_pvalues

    key = cost_key({"v": CALIBRATION_VERSION, "kind": "permutation", "machine": machine(), "m": m, "n": relabelings})
    hit = cache.get("perm", key, PermutationThroughput)
    if hit is not None:
        return hit
    before = list(os.getloadavg())
    rng = np.random.default_rng(0)
    points = []
    for n in (20, 160):
        y = rng.standard_normal((n, m))
        permutation_pvalues(y, n // 2, 20, 0)  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        permutation_pvalues(y, n // 2, relabelings, 1)
        points.append([n, m, relabelings, min(time.perf_counter() - t0, time.process_time() - c0)])
    (n1, _, _, t1), (n2, _, _, t2) = points
    per = [t / (relabelings * m) for t in (t1, t2)]
    b = max(0.0, (per[1] - per[0]) / (n2 - n1))
    out = PermutationThroughput(
        key=key,
        a=max(0.0, per[0] - b * n1),
        b=b,
        points=points,
        loadavg_before=before,
        loadavg_after=list(os.getloadavg()),
        measured_at=now(),
    )
    cache.put("perm", out)
    return out


def stats_seconds(
    cal: StatsCalibration, perm: PermutationThroughput, shape: StatsShape, *, steps: int, seeds: int, permutations: int
) -> float:
    """Estimated wall time of one cell's group-stats job."""
    work = shape.permutation_work(steps, seeds, permutations)
    return cal.seconds(steps) + sum(perm.seconds(r, n, m) for r, n, m in work)


def describe_shape(shape: StatsShape) -> dict[str, Any]:
    return {
        "groups": len(shape.groups),
        "pairs": math.comb(len(shape.groups), 2),
        "seed_columns_per_step": shape.seed_columns_per_step,
        "subject_columns_per_step": shape.subject_columns_per_step,
    }
