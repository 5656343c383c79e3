"""Measured costs for :mod:`.estimate`: short calibration runs, cached on disk.

A **training calibration** runs ``python -m autospec train`` (the command every training job
runs) on the run's own settings and prepared data for ``warmup + epochs`` epochs, in
``<cache>/runs/<key>/`` (kept: its spectra feed the group-stats calibration), and keeps

- ``epoch_s``: the median time of the measured (post-warm-up) epochs, from ``metrics.tsv``'s
  ``wall_s`` (forward, backward, recording, optimizer step and the spectra writes of one epoch);
  with ``recording.every > 1`` the run records every second epoch, giving ``epoch_s`` (recorded)
  and ``plain_epoch_s`` (not recorded) from one run;
- ``warmup_s``: the warm-up epochs as measured (the first one builds caches: often 10x an epoch);
- ``startup_s``: the process's whole time minus its epochs (interpreter start, imports, data
  loading, model building, writing the outputs);
- ``peak_rss_mb``: the process's peak resident memory (``wait4``'s ``ru_maxrss``).

**Seconds with a core to itself.** On a shared machine a process waits for a core: its wall time
overstates what the work costs. Every duration above is the measured wall time times the
process's ``cpu_share`` (CPU seconds / wall seconds, at most 1): the time the job takes when it has
a core to itself, and its CPU time. The raw wall times, the share and ``os.getloadavg()`` before and
after are stored beside them.

A **group-stats calibration** times ``python -m autospec group-stats`` without permutations on
the calibration run's spectra, their steps replicated to ``k`` and ``4k`` steps, for as many seeds
as the cell has (values jittered per seed) and with its per-subject spectra: ``t = c0 + c1 *
steps`` (reading, summaries, the paper's t-tests, Welch t, Hedges' g, BH, writing). The
permutation tests come on top, from a **permutation throughput** measured once per machine
(:func:`~.calibrate_stats.permutation_throughput`): one relabeling of ``n`` samples costs
``m * (a + b * n)`` seconds over ``m`` tested columns (the label matrix product is ``n * m``, the
t statistics ``m``).

Every result is cached as JSON in the cache directory, keyed by the sha256 of what determines the
cost: the run's settings without ``seed``, ``epochs`` and ``checkpoint_every``, the dataset's
sha256, the calibration lengths and the machine (:func:`machine`).
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ..atomic import sha256_file, write_text_atomic
from ..errors import InputError

#: bump when what a calibration measures changes (old cache entries are then ignored)
CALIBRATION_VERSION = 3
#: run settings that do not change an epoch's cost (the seed, the run's length, checkpoints)
_COST_FREE = ("seed", "epochs", "checkpoint_every")


def machine(device: str = "cpu") -> dict[str, Any]:
    """What makes a calibration valid only here: CPU (or GPU), core count, versions."""
    import torch

    from .. import __version__
    from ..training.outputs import cpu_model

    out: dict[str, Any] = {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch": torch.__version__,
        "autospec": __version__,
        "python": platform.python_version(),
    }
    if device in ("cuda", "auto") and torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def cost_key(material: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def cost_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The run settings that determine an epoch's cost (seed, epochs, checkpoint_every dropped)."""
    s = copy.deepcopy(settings)
    for k in _COST_FREE:
        s["training"].pop(k, None)
    return s


@dataclass(frozen=True)
class TrainCalibration:
    """One setting's measured costs; the ``*_s`` fields are seconds with a core to itself (the
    measured wall times x ``cpu_share``), ``epoch_walls`` the raw wall times of every epoch."""

    key: str
    epoch_s: float  # a recorded epoch after the warm-up (median)
    plain_epoch_s: float | None  # an epoch that records nothing (recording.every > 1), else None
    warmup_s: list[float]  # each warm-up epoch (the first is slower: caches, allocations)
    startup_s: float  # everything but the epochs: interpreter, imports, data, model, outputs
    peak_rss_mb: float
    cpu_share: float  # CPU s / wall s of the calibration process (< 1: it waited for a core)
    wall_s: float
    cpu_s: float
    warmup: int
    epochs: int
    epoch_walls: list[float]
    loadavg_before: list[float]
    loadavg_after: list[float]
    machine: dict[str, Any]
    measured_at: str
    data: str
    settings: dict[str, Any]

    def run_seconds(self, epochs: int, every: int) -> float:
        """Seconds a whole run of ``epochs`` epochs, recording every ``every``, takes with a core
        to itself: startup, the warm-up epochs as measured, the rest at the measured epoch cost."""
        warm = self.warmup_s[:epochs]
        rest = epochs - len(warm)
        recorded = -(-epochs // every) - sum(1 for e in range(len(warm)) if e % every == 0)
        plain = self.plain_epoch_s if self.plain_epoch_s is not None else self.epoch_s
        return self.startup_s + sum(warm) + recorded * self.epoch_s + (rest - recorded) * plain


@dataclass(frozen=True)
class StatsCalibration:
    key: str
    c0: float  # s
    c1: float  # s per step
    points: list[list[float]]  # [steps, seconds]
    loadavg_before: list[float]
    loadavg_after: list[float]
    measured_at: str

    def seconds(self, steps: int) -> float:
        return self.c0 + self.c1 * steps


@dataclass(frozen=True)
class PermutationThroughput:
    key: str
    a: float  # s per relabeling per column
    b: float  # s per relabeling per column per sample
    points: list[list[float]]  # [n, m, relabelings, seconds]
    loadavg_before: list[float]
    loadavg_after: list[float]
    measured_at: str

    def seconds(self, relabelings: int, n: int, m: int) -> float:
        return relabelings * m * (self.a + self.b * n)


#: what a :class:`Cache` holds (one JSON file each)
Calibration = TypeVar("Calibration", TrainCalibration, StatsCalibration, PermutationThroughput)


class Cache:
    """JSON files ``<cache_dir>/<kind>-<key[:20]>.json``; unreadable or stale ones are ignored."""

    def __init__(self, cache_dir: os.PathLike[str] | str, refresh: bool = False) -> None:
        self.dir = Path(cache_dir)
        self.refresh = refresh

    def path(self, kind: str, key: str) -> Path:
        return self.dir / f"{kind}-{key[:20]}.json"

    def run_dir(self, key: str) -> Path:
        """Where the training calibration ``key`` keeps its run (spectra for the stats calibration)."""
        return self.dir / "runs" / key[:20]

    def get(self, kind: str, key: str, cls: type[Calibration]) -> Calibration | None:
        p = self.path(kind, key)
        if self.refresh or not p.is_file():
            return None
        try:
            raw = json.loads(p.read_text())
            if raw.get("key") != key:
                return None
            return cls(**raw)
        except (OSError, ValueError, TypeError):
            return None  # a damaged entry is measured again, never trusted

    def put(self, kind: str, obj: TrainCalibration | StatsCalibration | PermutationThroughput) -> None:
        write_text_atomic(self.path(kind, obj.key), json.dumps(asdict(obj), indent=1, sort_keys=True) + "\n")


def _env() -> dict[str, str]:
    """The child's environment: this autospec first on PYTHONPATH (as the workflow's jobs have it)."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def run_child(argv: list[str], log: Path, timeout: float) -> tuple[float, float, float]:
    """Run ``argv``; (wall s, CPU s, peak RSS MB). InputError with the log's tail on failure."""
    t0 = time.perf_counter()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=_env())
        deadline = t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise InputError(f"calibration: {' '.join(argv[2:4])} ran past {timeout:.0f} s; stopped")
            time.sleep(0.02)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        raise InputError(f"calibration: {' '.join(argv[2:4])} failed (exit {proc.returncode}): {tail[0]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0  # Linux: ru_maxrss in kB


def _metrics(path: Path) -> list[tuple[float, bool]]:
    import pandas as pd

    m = pd.read_csv(path, sep="\t")
    return [(float(w), str(r) == "True") for w, r in zip(m["wall_s"], m["recorded"])]


def train_key(settings: dict[str, Any], data_sha: str, warmup: int, epochs: int, where: dict[str, Any]) -> str:
    return cost_key(
        {
            "v": CALIBRATION_VERSION,
            "settings": cost_settings(settings),
            "data": data_sha,
            "warmup": warmup,
            "epochs": epochs,
            "machine": where,
        }
    )


def _train_argv(settings: dict[str, Any], data: Path, keep: Path) -> list[str]:
    """Write the calibration run's config into a fresh ``keep``; the command that trains it there."""
    shutil.rmtree(keep, ignore_errors=True)
    keep.mkdir(parents=True)
    cfg = keep / "run.yaml"
    cfg.write_text(yaml.safe_dump({"data": str(data.resolve()), **settings}, sort_keys=False))
    argv = [sys.executable, "-m", "autospec", "train", "--config", str(cfg), "--out", str(keep), "--no-progress"]
    return argv + ["--threads", str(settings["training"].get("threads") or 1)]


def calibrate_training(
    settings: dict[str, Any],
    data: Path,
    cache: Cache,
    *,
    warmup: int = 1,
    epochs: int = 3,
    timeout: float = 3600.0,
) -> TrainCalibration:
    """The (cached) training calibration of one run's settings on ``data``; see the module doc.

    The calibration run's directory is kept as ``cache.run_dir(key)``: its spectra feed the
    group-stats calibration.
    """
    if not data.is_file():
        raise InputError(f"{data}: prepared data not found (make it first: see `autospec estimate --help`)")
    where = machine(settings["training"].get("device", "cpu"))
    every = int(settings["recording"]["every"])
    key = train_key(settings, sha256_file(data), warmup, epochs, where)
    hit = cache.get("train", key, TrainCalibration)
    if hit is not None and (cache.run_dir(key) / "metrics.tsv").is_file():
        return hit
    s = copy.deepcopy(settings)
    s["training"].update({"epochs": warmup + (2 * epochs if every > 1 else epochs), "checkpoint_every": 0})
    if every > 1:
        s["recording"]["every"] = 2  # alternate recorded and plain epochs
    keep = cache.run_dir(key)
    argv = _train_argv(s, data, keep)
    before = list(os.getloadavg())
    try:
        wall, cpu, rss = run_child(argv, keep / "train.log", timeout)
    except BaseException:
        shutil.rmtree(keep, ignore_errors=True)
        raise
    after = list(os.getloadavg())
    rows = _metrics(keep / "metrics.tsv")
    measured = rows[warmup:]
    rec = [w for w, r in measured if r]
    plain = [w for w, r in measured if not r]
    share = min(1.0, cpu / wall) if wall > 0 else 1.0
    cal = TrainCalibration(
        key=key,
        epoch_s=share * statistics.median(rec or [w for w, _ in measured]),
        plain_epoch_s=share * statistics.median(plain) if every > 1 and plain else None,
        warmup_s=[share * w for w, _ in rows[:warmup]],
        startup_s=share * max(0.0, wall - sum(w for w, _ in rows)),
        peak_rss_mb=rss,
        cpu_share=share,
        wall_s=wall,
        cpu_s=cpu,
        warmup=warmup,
        epochs=epochs,
        epoch_walls=[w for w, _ in rows],
        loadavg_before=before,
        loadavg_after=after,
        machine=where,
        measured_at=now(),
        data=str(data),
        settings=cost_settings(settings),
    )
    cache.put("train", cal)
    return cal
