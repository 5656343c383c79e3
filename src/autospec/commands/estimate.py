"""``autospec estimate``: what a study will cost, measured before running it (docs/workflow.md).

Reads the workflow config as ``snakemake --configfile`` would (config/config.yaml, then the files
given), plans the study, runs a short calibration of every training setting on its prepared data
(cached on disk: a second estimate is instant) and prints CPU-hours and wall time per job and in
all, here and on SLURM, and the resources each rule should request. The prepared data must exist:
the command names the files to make first (``snakemake ... <files>``) when they do not.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..workflow.calibrate import Cache
    from ..workflow.estimate import Estimate
    from ..workflow.plan import StudyPlan

NAME = "estimate"
HELP = "Estimate a study's CPU-hours, wall time and SLURM requests from short measured calibration runs."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--configfile",
        type=Path,
        nargs="+",
        default=[],
        metavar="FILE",
        help="config files merged over config/config.yaml, in order (as snakemake --configfile)",
    )
    p.add_argument("--workflow", type=Path, default=Path("."), metavar="DIR", help="workflow directory (default .)")
    p.add_argument(
        "--only", nargs="+", default=None, metavar="GLOB", help="only these experiments (<source>/<kind>/<model>)"
    )
    p.add_argument("--cores", type=int, default=None, help="cores of this machine's run (default: all)")
    p.add_argument("--slurm-jobs", type=int, default=50, help="SLURM jobs at once (profiles/slurm: jobs; default 50)")
    p.add_argument(
        "--max-runtime",
        type=int,
        default=None,
        metavar="MIN",
        help="wall-time limit of one SLURM job in minutes (default: the config's resources.max_runtime)",
    )
    p.add_argument("--margin", type=float, default=1.3, help="safety factor on every request (default 1.3)")
    p.add_argument("--calibration-epochs", type=int, default=3, help="measured epochs per setting (default 3)")
    p.add_argument("--warmup-epochs", type=int, default=1, help="unmeasured first epochs (default 1)")
    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        metavar="DIR",
        help="calibration cache (default <results>/benchmarks/calibration)",
    )
    p.add_argument("--recalibrate", action="store_true", help="measure again, ignoring the cache")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="write every job's estimate as JSON")
    p.add_argument(
        "--overlay",
        type=Path,
        default=None,
        metavar="FILE",
        help="write a config overlay with the measured training resources (pass it after your --configfile)",
    )


def run(args: argparse.Namespace) -> int:
    import json
    import math

    from ..atomic import write_text_atomic
    from ..errors import InputError
    from ..workflow import load_study
    from ..workflow.calibrate import Cache
    from ..workflow.config import read_config_files
    from ..workflow.estimate import MissingData
    from ..workflow.estimate_report import json_record, overlay_text, text_report

    for flag, value, lo in (
        ("--cores", args.cores, 1),
        ("--slurm-jobs", args.slurm_jobs, 1),
        ("--max-runtime", args.max_runtime, 1),
        ("--calibration-epochs", args.calibration_epochs, 1),
        ("--warmup-epochs", args.warmup_epochs, 0),
    ):
        if value is not None and value < lo:
            raise InputError(f"{flag}: {value} must be >= {lo}")
    if not (math.isfinite(args.margin) and 1.0 <= args.margin <= 10.0):
        raise InputError(f"--margin: {args.margin} must be within [1, 10]")
    config, schema = read_config_files(args.workflow, args.configfile)
    plan = load_study(config, schema)
    cache = Cache(args.cache or Path(plan.results) / "benchmarks" / "calibration", refresh=args.recalibrate)
    try:
        est = _estimate(args, plan, cache)
    except MissingData as err:
        files = " ".join(shlex.quote(p) for p in err.paths)
        conf = " ".join(shlex.quote(str(f)) for f in args.configfile)
        raise InputError(
            f"{err} (make it first: snakemake --cores N {files}{' --configfile ' + conf if conf else ''})"
        ) from None
    conf = " ".join(shlex.quote(str(f)) for f in args.configfile)
    command = "autospec estimate" + (f" --configfile {conf}" if conf else "")
    command += f" --max-runtime {est.max_runtime}" if est.max_runtime else ""
    if args.json:
        write_text_atomic(args.json, json.dumps(json_record(est, plan), indent=1, default=str) + "\n")
    if args.overlay:
        write_text_atomic(args.overlay, overlay_text(est, plan, command))
    print(text_report(est, plan), end="")
    return 0


def _estimate(args: argparse.Namespace, plan: StudyPlan, cache: Cache) -> Estimate:
    from ..workflow.estimate import estimate_study

    return estimate_study(
        plan,
        cache,
        only=args.only,
        cores=args.cores or os.cpu_count() or 1,
        slurm_jobs=args.slurm_jobs,
        max_runtime=args.max_runtime or plan.config["resources"]["max_runtime"],
        margin=args.margin,
        warmup=args.warmup_epochs,
        epochs=args.calibration_epochs,
        progress=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
