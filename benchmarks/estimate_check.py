"""Compare `autospec estimate` with a real Snakemake run of the same study.

    autospec estimate --configfile C --only 'X/*' --cores 2 --json est.json
    snakemake --cores 2 --configfile C <targets> ...       (its log: .snakemake/log/<time>.snakemake.log)
    python benchmarks/estimate_check.py --estimate est.json --log <that log> --results RESULTS \
        --load "<uptime before>" --load "<uptime after>" --out benchmarks/results/estimate_<name>

Every job's real wall time comes from the Snakemake log (start and finish stamps, 1 s resolution);
training and group-stats jobs also have Snakemake benchmark files (wall `s` and `cpu_time`). The
result (.md + .json) puts each rule's estimated and measured seconds side by side, every training
setting's estimated and measured run time, and the study's estimated and measured wall time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import re
import statistics
from collections import defaultdict
from pathlib import Path

import pandas as pd

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
START = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")
FINISH = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)")


def _time(text: str) -> dt.datetime:
    return dt.datetime.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y")


def parse_log(path: Path) -> dict[int, dict]:
    """jobid -> {rule, outputs, start, end} from a Snakemake log."""
    jobs: dict[int, dict] = {}
    stamp, current = None, None
    for line in path.read_text().splitlines():
        m = STAMP.match(line.strip())
        if m:
            stamp = _time(m.group(1))
            continue
        m = START.match(line.strip())
        if m:
            current = {"rule": m.group(1), "start": stamp, "outputs": []}
            continue
        s = line.strip()
        if current is not None and s.startswith("output:"):
            current["outputs"] = [o.strip() for o in s[len("output:") :].split(",")]
        elif current is not None and s.startswith("jobid:"):
            jobs[int(s.split()[1])] = current
            current = None
        m = FINISH.match(s)
        if m and int(m.group(1)) in jobs:
            jobs[int(m.group(1))]["end"] = stamp
    return {k: v for k, v in jobs.items() if "end" in v}


def match(est_jobs: dict[str, dict], log_jobs: dict[int, dict]) -> list[dict]:
    """One row per estimated job with the real job that made its outputs."""
    by_rule = defaultdict(list)
    for j in log_jobs.values():
        by_rule[j["rule"].replace("train_subjects", "train")].append(j)
    rows = []
    for name, e in est_jobs.items():
        rule, target = name.split(":", 1)
        real = [j for j in by_rule[rule] if any(o == target or o.startswith(target + "/") for o in j["outputs"])]
        wall = (real[0]["end"] - real[0]["start"]).total_seconds() if real else None
        rows.append({"job": name, "rule": rule, "estimated_s": e["seconds"], "measured_s": wall, "detail": e})
    return rows


def benchmark(results: Path, target: str, rule: str) -> dict | None:
    rel = Path(target).relative_to(results)
    path = results / "benchmarks" / rule / (str(rel.parent if rule == "group_stats" else rel) + ".tsv")
    if not path.is_file():
        return None
    b = pd.read_csv(path, sep="\t").iloc[-1]
    return {"s": float(b["s"]), "cpu_time": float(b["cpu_time"]), "max_rss": float(b["max_rss"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--estimate", type=Path, required=True)
    ap.add_argument("--log", type=Path, required=True)
    ap.add_argument("--results", type=Path, required=True, help="the study's results root")
    ap.add_argument("--load", action="append", default=[], help="`uptime` output before / after the run")
    ap.add_argument("--title", default="estimate vs measured")
    ap.add_argument("--out", type=Path, required=True, help="output stem (.md and .json are written)")
    args = ap.parse_args()
    est = json.loads(args.estimate.read_text())
    log_jobs = parse_log(args.log)
    rows = match(est["jobs"], log_jobs)
    for r in rows:
        if r["rule"] in ("train", "group_stats"):
            r["benchmark"] = benchmark(args.results, r["job"].split(":", 1)[1], r["rule"])
    starts = [j["start"] for j in log_jobs.values()]
    ends = [j["end"] for j in log_jobs.values()]
    wall = (max(ends) - min(starts)).total_seconds() if starts else None
    per_rule: dict[str, dict] = defaultdict(lambda: {"jobs": 0, "estimated_s": 0.0, "measured_s": 0.0, "cpu_s": 0.0})
    for r in rows:
        p = per_rule[r["rule"]]
        p["jobs"] += 1
        p["estimated_s"] += r["estimated_s"]
        p["measured_s"] += r["measured_s"] or 0.0
        p["cpu_s"] += (r.get("benchmark") or {}).get("cpu_time", 0.0)
    cal = next(iter(est["calibrations"].values()), {})
    lines = [
        f"# {args.title}",
        "",
        f"Machine: {cal.get('machine', {}).get('cpu', platform.processor())}, "
        f"{cal.get('machine', {}).get('logical_cpus')} logical CPUs, torch {cal.get('machine', {}).get('torch')}; "
        f"study {est['study']!r}, `--cores {est['cores']}`.",
        "",
        "Load average (1, 5, 15 min) around the measured run: " + " / ".join(args.load or ["not recorded"]) + ".",
        "Load average during the calibrations: "
        + ", ".join(
            sorted({f"{c['loadavg_before'][0]:.1f}->{c['loadavg_after'][0]:.1f}" for c in est["calibrations"].values()})
        )
        + ".",
        "",
        f"**Wall time of the study: estimated {est['wall_here_s'] / 60:.1f} min with a core to each job, "
        f"measured {(wall or 0) / 60:.1f} min (first job's start to last job's end; ratio "
        f"{(wall or 0) / est['wall_here_s']:.2f}).** Estimated CPU-hours {est['cpu_hours']:.3f}.",
        "",
        "Estimated seconds are with a core to each job (the calibration's wall x its CPU share); on a",
        "shared machine the measured wall times are longer by the load, the measured CPU times are not.",
        "",
        "| rule | jobs | estimated s (sum) | measured wall s (sum) | wall/estimated | measured CPU s | CPU/estimated |",
        "|---|---|---|---|---|---|---|",
    ]
    nan = float("nan")
    for rule, p in sorted(per_rule.items(), key=lambda kv: -kv[1]["estimated_s"]):
        ratio = p["measured_s"] / p["estimated_s"] if p["estimated_s"] else nan
        cpu = f"{p['cpu_s']:.0f}" if p["cpu_s"] else ""
        cpu_ratio = f"{p['cpu_s'] / p['estimated_s']:.2f}" if p["cpu_s"] and p["estimated_s"] else ""
        lines.append(
            f"| {rule} | {p['jobs']} | {p['estimated_s']:.0f} | {p['measured_s']:.0f} | {ratio:.2f} | {cpu} | {cpu_ratio} |"
        )
    lines += [
        "",
        "Training runs (estimated = startup + warm-up + epochs x calibrated s/epoch; measured = Snakemake benchmark):",
        "",
        "| run | epochs | calibrated s/epoch | estimated s | measured wall s | measured CPU s | CPU/estimated |",
        "|---|---|---|---|---|---|---|",
    ]
    ratios = []
    for r in sorted((r for r in rows if r["rule"] == "train"), key=lambda r: r["job"]):
        b, d = r.get("benchmark") or {}, r["detail"]
        if b:
            ratios.append(b["cpu_time"] / r["estimated_s"])
        lines.append(
            f"| {d['runid']} | {d['steps']} | {d['epoch_s']:.4f} | {r['estimated_s']:.0f} | "
            f"{b.get('s', nan):.0f} | {b.get('cpu_time', nan):.0f} | {(b.get('cpu_time', nan) / r['estimated_s']):.2f} |"
        )
    if ratios:
        lines += [
            "",
            f"Training runs, measured CPU / estimated: median {statistics.median(ratios):.2f}, "
            f"range {min(ratios):.2f}-{max(ratios):.2f} over {len(ratios)} runs.",
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    record = {
        "estimate": args.estimate.name,
        "wall_measured_s": wall,
        "per_rule": per_rule,
        "rows": rows,
        "load": args.load,
    }
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
