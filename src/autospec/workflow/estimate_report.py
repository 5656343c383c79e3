"""What ``autospec estimate`` prints and writes: a text report, a JSON record, a config overlay.

The overlay is a workflow config file (merged with ``--configfile`` after the study's own files)
that sets, per data kind x model pair, the training jobs' ``resources`` (runtime in all, memory,
attempts) and ``training.checkpoint_every``, and ``resources.max_runtime``: with it, every
SLURM job stays under the wall-time limit and a longer run continues in resubmitted jobs.
"""

from __future__ import annotations

import os
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from .estimate import Estimate
from .plan import StudyPlan


def _hours(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def rule_totals(est: Estimate) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for j in est.jobs.values():
        r = out.setdefault(j.rule, {"jobs": 0, "cpu_s": 0.0, "max_s": 0.0, "basis": j.basis, "mem_mb": 0})
        r["jobs"] += 1
        r["cpu_s"] += j.cpu_seconds
        r["max_s"] = max(r["max_s"], j.seconds)
        r["mem_mb"] = max(r["mem_mb"], j.mem_mb)
    return out


def cell_rows(est: Estimate, plan: StudyPlan) -> list[dict[str, Any]]:
    """One row per (cell, subjects?) of training runs: what was measured and what it implies."""
    rows: dict[tuple[str, bool], dict[str, Any]] = {}
    for name, j in est.jobs.items():
        if j.rule != "train":
            continue
        runid = j.detail["runid"]
        cell = str(Path(runid).parent.as_posix())
        subj = bool(plan.runs[runid]["recording"]["subjects"])
        s = est.sizing[name]
        r = rows.setdefault(
            (cell, subj),
            {
                "cell": cell + (" (+subjects)" if subj else ""),
                "runs": 0,
                "epochs": plan.runs[runid]["training"]["epochs"],
                "epoch_s": j.detail["epoch_s"],
                "startup_s": j.detail["startup_s"],
                "run_s": j.seconds,
                "cpu_s": 0.0,
                "peak_rss_mb": j.detail["peak_rss_mb"],
                "runtime_min": s.runtime,
                "attempts": s.attempts,
                "checkpoint_every": s.checkpoint_every,
                "mem_mb": s.mem_mb,
            },
        )
        r["runs"] += 1
        r["cpu_s"] += j.cpu_seconds
    return list(rows.values())


def text_report(est: Estimate, plan: StudyPlan) -> str:
    loads = [c.loadavg_before[0] for c in est.calibrations.values()] + [
        c.loadavg_after[0] for c in est.calibrations.values()
    ]
    lines = [f"Study {plan.study!r} ({plan.results}): {len(est.jobs)} jobs"]
    if est.calibrations:
        c = next(iter(est.calibrations.values()))
        share = statistics.median(x.cpu_share for x in est.calibrations.values())
        lines += [
            f"Calibrated on {c.machine['cpu']} ({c.machine['logical_cpus']} logical CPUs), torch {c.machine['torch']}; "
            f"{c.warmup} warm-up + {c.epochs} measured epochs per setting.",
            "Times are with a core to each job (measured wall x CPU share). During calibration the load "
            f"average was {min(loads):.1f}-{max(loads):.1f} and the runs got a median {share:.0%} of a core: "
            f"on a machine that busy, expect about {1 / max(share, 0.01):.1f}x the wall times below.",
        ]
    lines += ["", "Training (per setting; 'run' = one run's wall time; request = per SLURM job):"]
    head = ("setting", "runs", "epochs", "s/epoch", "startup", "run", "CPU", "peak RSS", "request", "jobs", "ckpt")
    table: list[tuple[str, ...]] = [head]
    table += [
        (
            r["cell"],
            str(r["runs"]),
            str(r["epochs"]),
            f"{r['epoch_s']:.3f}",
            f"{r['startup_s']:.1f} s",
            _hours(r["run_s"]),
            _hours(r["cpu_s"]),
            f"{r['peak_rss_mb']:.0f} MB",
            f"{r['runtime_min']} min, {r['mem_mb']} MB",
            str(r["attempts"]),
            str(r["checkpoint_every"]),
        )
        for r in sorted(cell_rows(est, plan), key=lambda r: -r["cpu_s"])
    ]
    lines += _columns(table)
    lines += ["", "Per rule:"]
    table = [("rule", "jobs", "CPU", "longest job", "basis", "SLURM request (runtime, mem_mb)")]
    for rule, r in sorted(rule_totals(est).items(), key=lambda kv: -kv[1]["cpu_s"]):
        req = "per setting (above)" if rule == "train" else _request(r)
        table.append((rule, str(r["jobs"]), _hours(r["cpu_s"]), _hours(r["max_s"]), str(r["basis"]), req))
    lines += _columns(table)
    lines += [
        "",
        f"In all: {est.cpu_hours:.2f} CPU-hours.",
        f"Wall time on this machine with --cores {est.cores}: {_hours(est.wall_here())} (list schedule of the job graph).",
        f"Wall time on SLURM with at most {est.slurm_jobs} jobs at once: {_hours(est.wall_slurm())} (queue waits not included).",
    ]
    if est.max_runtime:
        chained = [n for n, s in est.sizing.items() if s.attempts > 1]
        lines.append(
            f"Wall-time limit {est.max_runtime} min: {len(chained)} training run(s) need chained jobs "
            "(checkpoint, resubmit, resume); write the overlay with --overlay and pass it after your --configfile."
        )
    extra = _set_resources(est)
    if extra:
        lines.append(f"Other rules over the profiles' default-resources (30 min, {2000} MB): snakemake {extra}")
    lines.append(f"Margin on every request: x{est.margin:g} (load, drift over training).")
    return "\n".join(lines) + "\n"


def _request(r: dict[str, Any]) -> str:
    return f"{max(10, 5 * -(-int(r['max_s'] * 1.3) // 300))} min, {r['mem_mb']} MB"


def _set_resources(est: Estimate) -> str:
    flags = []
    for rule, r in sorted(rule_totals(est).items()):
        if rule != "train" and r["max_s"] * est.margin > 30 * 60:
            flags.append(f"{rule}:runtime={max(10, 5 * -(-int(r['max_s'] * est.margin) // 300))}")
    return f"--set-resources {' '.join(flags)}" if flags else ""


def _columns(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows
    ]


def json_record(est: Estimate, plan: StudyPlan) -> dict[str, Any]:
    return {
        "study": plan.study,
        "results": plan.results,
        "cores": est.cores,
        "slurm_jobs": est.slurm_jobs,
        "max_runtime": est.max_runtime,
        "margin": est.margin,
        "cpu_hours": est.cpu_hours,
        "wall_here_s": est.wall_here(),
        "wall_slurm_s": est.wall_slurm(),
        "rules": rule_totals(est),
        "settings": cell_rows(est, plan),
        "jobs": {
            n: {
                "rule": j.rule,
                "seconds": j.seconds,
                "threads": j.threads,
                "basis": j.basis,
                "deps": j.deps,
                "mem_mb": j.mem_mb,
                **({"sizing": vars(est.sizing[n])} if n in est.sizing else {}),
                **j.detail,
            }
            for n, j in est.jobs.items()
        },
        "calibrations": {r: vars(c) for r, c in est.calibrations.items()},
        "loadavg_now": list(os.getloadavg()),
    }


def overlay(est: Estimate, plan: StudyPlan) -> dict[str, Any]:
    """The config overlay (see the module doc): per pair, the largest request of its runs."""
    pairs: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for name, s in est.sizing.items():
        _, kind, model = Path(est.jobs[name].detail["runid"]).parts[:3]
        p = pairs[(kind, model)]
        p["runtime"] = max(p.get("runtime", 0), s.total)
        p["mem_mb"] = max(p.get("mem_mb", 0), s.mem_mb)
        p["attempts"] = max(p.get("attempts", 1), s.attempts)
        p["checkpoint_every"] = min(p.get("checkpoint_every", s.checkpoint_every), s.checkpoint_every)
    experiments: dict[str, dict[str, Any]] = {}
    for (kind, model), p in sorted(pairs.items()):
        block: dict[str, Any] = {"resources": {k: p[k] for k in ("runtime", "mem_mb", "attempts")}}
        if p["attempts"] > 1 or p["checkpoint_every"] != plan.config["training"]["checkpoint_every"]:
            block["training"] = {"checkpoint_every": p["checkpoint_every"]}
        experiments.setdefault(kind, {})[model] = block
    out: dict[str, Any] = {"experiments": experiments}
    if est.max_runtime:
        out["resources"] = {"max_runtime": est.max_runtime}
    return out


def overlay_text(est: Estimate, plan: StudyPlan, command: str) -> str:
    head = (
        f"# Written by `{command}`: measured resources of study {plan.study!r}'s training jobs.\n"
        "# Pass it after the study's own config files: snakemake --configfile <yours...> <this file>\n"
    )
    return head + yaml.safe_dump(overlay(est, plan), sort_keys=False)
