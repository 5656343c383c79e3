"""The cost of a study before running it: every job's wall time, in all, here and on SLURM.

:func:`estimate_study` turns a :class:`~.plan.StudyPlan` into :class:`Job` s (the rules' jobs,
with their dependencies) and gives each a duration:

- ``train``: calibrated (:mod:`.calibrate`): startup + recorded epochs x the measured epoch time;
- ``group_stats``: calibrated (:mod:`.calibrate_stats`): reading/testing cost linear in the
  recorded steps, plus the permutation tests from the machine's measured permutation throughput;
- data preparation and figures: nominal durations (:data:`NOMINAL_S`, measured on the 2-core
  reference machine, docs/workflow.md), marked ``nominal``; the local ``run_config`` jobs are
  instant.

From the durations: CPU-hours (seconds x threads), the wall time on this machine with ``cores``
cores (a list schedule over the job graph, longest remaining path first, as Snakemake runs one
job per free core), the wall time on SLURM with at most ``slurm_jobs`` jobs at once (queue waits
not included) and the resources each SLURM job should request (:func:`size_training`): a runtime
under the wall-time limit, the checkpoint interval and the number of chained jobs for runs that
need longer.
"""

from __future__ import annotations

import fnmatch
import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .calibrate import Cache, TrainCalibration, calibrate_training
from .calibrate_stats import calibrate_stats, permutation_throughput, stats_seconds, stats_shape
from .plan import StudyPlan

#: seconds per job of the uncalibrated rules, measured on the reference machine (2-core AMD EPYC
#: VM, default study and paper-study sinusoid experiment; docs/workflow.md); paper-sized data
#: preparation takes longer than this (the 3 mm spatial maps especially)
NOMINAL_S: dict[str, float] = {
    "make_demo_cohort": 40.0,
    "preprocess": 8.0,
    "preprocess_spatialmaps": 15.0,
    "prepare_mnist": 6.0,
    "make_sinusoid": 4.0,
    "figure_spectra": 12.0,
    "figure_curves": 6.0,
    "figure_triptych": 8.0,
    "figure_brain": 8.0,
}
#: memory (MB) requested for the nominal and statistics jobs (the profiles' default-resources)
DEFAULT_MEM_MB = 2000


class MissingData(InputError):
    """Prepared data the calibration needs does not exist yet (``paths``)."""

    def __init__(self, paths: list[str]) -> None:
        super().__init__(
            "autospec estimate trains briefly on the prepared data, which does not exist yet: " + " ".join(paths)
        )
        self.paths = paths


@dataclass
class Job:
    name: str  # rule:target
    rule: str
    seconds: float
    threads: int = 1
    deps: list[str] = field(default_factory=list)
    basis: str = "nominal"  # calibrated | nominal | instant
    mem_mb: int = DEFAULT_MEM_MB
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_seconds(self) -> float:
        return self.seconds * self.threads


@dataclass
class Sizing:
    """SLURM request of one training run: ``runtime`` per job and ``total`` (minutes)."""

    runtime: int
    total: int
    attempts: int
    checkpoint_every: int
    mem_mb: int


@dataclass
class Estimate:
    jobs: dict[str, Job]
    cores: int
    slurm_jobs: int
    max_runtime: int | None
    margin: float
    sizing: dict[str, Sizing]  # train job name -> request
    calibrations: dict[str, TrainCalibration]  # runid -> its calibration

    @property
    def cpu_hours(self) -> float:
        return sum(j.cpu_seconds for j in self.jobs.values()) / 3600.0

    def wall_here(self) -> float:
        return list_schedule(self.jobs, self.cores)

    def wall_slurm(self) -> float:
        """Wall time with at most ``slurm_jobs`` jobs at once, each chained run's jobs in sequence."""
        jobs = {n: _as_slurm(j, self.sizing.get(n)) for n, j in self.jobs.items()}
        return list_schedule(jobs, self.slurm_jobs, one_slot_per_job=True)


def _as_slurm(job: Job, sizing: Sizing | None) -> Job:
    if sizing is None or sizing.attempts == 1:
        return job
    # a chained run: each further job repeats the startup (the epochs' work is unchanged)
    jobs_needed = math.ceil(job.seconds / (sizing.runtime * 60.0))
    extra = (jobs_needed - 1) * job.detail.get("startup_s", 0.0)
    return Job(job.name, job.rule, job.seconds + extra, job.threads, job.deps, job.basis, job.mem_mb, job.detail)


def list_schedule(jobs: dict[str, Job], slots: int, one_slot_per_job: bool = False) -> float:
    """Makespan of a greedy list schedule: a ready job starts when its threads are free, longest
    remaining path first. ``one_slot_per_job``: every job takes one slot (SLURM's ``jobs`` limit)."""
    if slots < 1:
        raise InputError(f"cores / jobs: {slots} must be >= 1")
    need = {n: 1 if one_slot_per_job else min(j.threads, slots) for n, j in jobs.items()}
    users: dict[str, list[str]] = {n: [] for n in jobs}
    for n, j in jobs.items():
        for d in j.deps:
            users[d].append(n)
    rank: dict[str, float] = {}
    for n in reversed(_topological(jobs)):
        rank[n] = jobs[n].seconds + max((rank[u] for u in users[n]), default=0.0)
    waiting = {n: len(j.deps) for n, j in jobs.items()}
    ready = [(-rank[n], n) for n, k in waiting.items() if k == 0]
    heapq.heapify(ready)
    running: list[tuple[float, str]] = []
    clock, free = 0.0, slots
    while ready or running:
        held = []
        while ready:
            r, n = heapq.heappop(ready)
            if need[n] <= free:
                free -= need[n]
                heapq.heappush(running, (clock + jobs[n].seconds, n))
            else:
                held.append((r, n))
        for item in held:
            heapq.heappush(ready, item)
        clock, n = heapq.heappop(running)
        free += need[n]
        for u in users[n]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, (-rank[u], u))
    return clock


def _topological(jobs: dict[str, Job]) -> list[str]:
    order, state = [], dict.fromkeys(jobs, 0)
    for start, job in jobs.items():
        stack = [(start, iter(job.deps))]
        if state[start]:
            continue
        state[start] = 1
        while stack:
            n, it = stack[-1]
            d = next(it, None)
            if d is None:
                stack.pop()
                state[n] = 2
                order.append(n)
            elif state[d] == 0:
                state[d] = 1
                stack.append((d, iter(jobs[d].deps)))
    return order


# ------------------------------------------------------------------ the job graph
def _data_jobs(plan: StudyPlan, sources: set[str]) -> dict[str, Job]:
    jobs: dict[str, Job] = {}
    for name, (typ, kinds) in plan.sources.items():
        if name not in sources:
            continue
        gen = []
        if typ == "cohort" and name in plan.generated:
            gen = [f"make_demo_cohort:{name}"]
            jobs[gen[0]] = Job(gen[0], "make_demo_cohort", NOMINAL_S["make_demo_cohort"])
        for kind in kinds:
            rule = {"spatialmaps": "preprocess_spatialmaps", "mnist": "prepare_mnist", "sinusoid": "make_sinusoid"}
            r = rule.get(kind, "preprocess")
            path = plan.data_path(f"{name}/{kind}")
            jobs[f"{r}:{path}"] = Job(f"{r}:{path}", r, NOMINAL_S[r], deps=list(gen))
    return jobs


def job_graph(plan: StudyPlan, only: list[str] | None = None) -> dict[str, Job]:
    """Every job of the plan (durations of the calibrated rules still 0), restricted to the
    experiments matching the ``only`` patterns (fnmatch on ``<source>/<kind>/<model>``)."""
    exps = [e for e in plan.experiments if not only or any(fnmatch.fnmatch(e, p) for p in only)]
    if not exps:
        raise InputError(f"--only {' '.join(only or [])}: matches none of the experiments {sorted(plan.experiments)}")
    sources = {Path(e).parts[0] for e in exps}
    jobs = _data_jobs(plan, sources)
    data_job = {j.name.split(":", 1)[1]: j.name for j in jobs.values() if j.rule != "make_demo_cohort"}
    cells = sorted({c for e in exps for c in plan.experiments[e].panels.values()})
    train = {}
    for cell in cells:
        for k in plan.cells[cell].seeds:
            runid = f"{cell}/seed{k}"
            name = f"train:{plan.run_dir(cell, k)}"
            dep = data_job[plan.data_path(runid)]
            jobs[name] = Job(name, "train", 0.0, plan.run_threads(runid), [dep], "calibrated", detail={"runid": runid})
            train[plan.run_dir(cell, k)] = name
    for cell in cells:
        if plan.cells[cell].difference:
            name = f"group_stats:{plan.results}/{cell}/stats"
            deps = [train[plan.run_dir(cell, k)] for k in plan.cells[cell].seeds]
            jobs[name] = Job(name, "group_stats", 0.0, 1, deps, "calibrated", detail={"cell": cell})
    for e in exps:
        runs = {d for dirs in plan.panel_runs(e).values() for d in dirs}
        stats = [f"group_stats:{plan.results}/{plan.experiments[e].panels[lab]}/stats" for lab in plan.diff_labels(e)]
        figs = {"figure_spectra": sorted(train[d] for d in runs) + sorted(set(stats))}
        figs["figure_curves"] = sorted({train[d] for d in plan.curve_runs(e).values()})
        if plan.experiments[e].triptych:
            figs["figure_triptych"] = [train[plan.triptych_run(e)]]
        for rule, deps in figs.items():
            name = f"{rule}:{plan.results}/{e}"
            jobs[name] = Job(name, rule, NOMINAL_S[rule], deps=deps)
    for s in plan.brain:
        if s in sources:
            name = f"figure_brain:{plan.results}/{s}"
            jobs[name] = Job(
                name, "figure_brain", NOMINAL_S["figure_brain"], deps=[data_job[plan.data_path(f"{s}/spatialmaps")]]
            )
    return jobs


# ------------------------------------------------------------------ durations
def _steps(settings: dict[str, Any]) -> int:
    return -(-int(settings["training"]["epochs"]) // int(settings["recording"]["every"]))


def estimate_study(
    plan: StudyPlan,
    cache: Cache,
    *,
    only: list[str] | None = None,
    cores: int = 2,
    slurm_jobs: int = 50,
    max_runtime: int | None = None,
    margin: float = 1.3,
    warmup: int = 1,
    epochs: int = 3,
    progress: Callable[[str], object] | None = None,
) -> Estimate:
    """Calibrate (or read from ``cache``) and estimate every job of ``plan``; see the module doc.

    Raises :class:`MissingData` listing the prepared data files that do not exist yet (the
    calibration trains on them): make them first, e.g. with ``snakemake <those files>``.
    """
    jobs = job_graph(plan, only)
    missing = sorted({plan.data_path(j.detail["runid"]) for j in jobs.values() if j.rule == "train"})
    missing = [p for p in missing if not Path(p).is_file()]
    if missing:
        raise MissingData(missing)
    cals: dict[str, TrainCalibration] = {}
    done: dict[tuple[str, bool], TrainCalibration] = {}  # the seeds of a cell cost the same
    perm = None
    for j in jobs.values():
        if j.rule != "train":
            continue
        runid = j.detail["runid"]
        settings = plan.runs[runid]
        same = (str(Path(runid).parent), bool(settings["recording"]["subjects"]))
        if same not in done:
            if progress:
                progress(f"calibrating {runid}")
            data = Path(plan.data_path(runid))
            done[same] = calibrate_training(settings, data, cache, warmup=warmup, epochs=epochs)
        cal = cals[runid] = done[same]
        steps = _steps(settings)
        j.seconds = cal.run_seconds(int(settings["training"]["epochs"]), int(settings["recording"]["every"]))
        j.mem_mb = _mem_request(cal.peak_rss_mb)
        j.detail.update(
            {"epoch_s": cal.epoch_s, "startup_s": cal.startup_s, "peak_rss_mb": cal.peak_rss_mb, "steps": steps}
        )
    for j in jobs.values():
        if j.rule != "group_stats":
            continue
        cell = plan.cells[j.detail["cell"]]
        first = f"{cell.name}/seed{cell.seeds[0]}"
        cal = cals[first]
        if progress:
            progress(f"calibrating group-stats of {cell.name}")
        perm = perm or permutation_throughput(cache)
        run_dir = cache.run_dir(cal.key)
        scal = calibrate_stats(run_dir, cal.key, len(cell.seeds), cache)
        shape = stats_shape(run_dir)
        steps = _steps(plan.runs[first])
        j.seconds = stats_seconds(
            scal, perm, shape, steps=steps, seeds=len(cell.seeds), permutations=plan.config["stats"]["permutations"]
        )
        j.detail.update({"groups": len(shape.groups), "pairs": math.comb(len(shape.groups), 2), "steps": steps})
    est = Estimate(jobs, cores, slurm_jobs, max_runtime, margin, {}, cals)
    est.sizing = {n: size_training(j, plan, max_runtime, margin) for n, j in jobs.items() if j.rule == "train"}
    return est


def _mem_request(peak_rss_mb: float) -> int:
    """Peak RSS x 1.5 + 500 MB, rounded up to 100 MB."""
    return int(math.ceil((peak_rss_mb * 1.5 + 500.0) / 100.0) * 100)


def size_training(job: Job, plan: StudyPlan, max_runtime: int | None, margin: float) -> Sizing:
    """The SLURM request of one training run, under the wall-time limit ``max_runtime`` (minutes).

    A run that fits (with ``margin``) asks for its time, rounded up to 5 minutes (at least 10). A
    longer one asks for the limit, checkpoints at least every tenth of it, and takes
    ``attempts`` chained jobs: each does ``limit - startup - one checkpoint interval`` of work
    (the interval it may lose when killed), the last one's remainder with the margin.
    """
    settings = plan.runs[job.detail["runid"]]
    epochs = int(settings["training"]["epochs"])
    epoch_s, startup = job.detail["epoch_s"], job.detail["startup_s"]
    need = job.seconds * margin
    every = int(settings["training"]["checkpoint_every"])
    total = max(10, 5 * math.ceil(need / 300.0))
    if not max_runtime or need <= max_runtime * 60.0:
        return Sizing(min(total, max_runtime or total), total, 1, every, job.mem_mb)
    limit = max_runtime * 60.0
    every = max(1, min(epochs, int(0.1 * limit / max(epoch_s, 1e-9))))
    useful = limit - startup * margin - every * epoch_s * margin
    if useful <= 0:
        raise InputError(
            f"resources.max_runtime {max_runtime} min: too short for {job.detail['runid']} "
            f"(startup {startup:.0f} s, {every} epoch(s) of {epoch_s:.2f} s between checkpoints)"
        )
    attempts = math.ceil(epochs * epoch_s * margin / useful)
    return Sizing(max_runtime, min(total, attempts * max_runtime), attempts, every, job.mem_mb)
