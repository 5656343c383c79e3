"""Calibration of every group-test family: false-positive rate on null cohorts, power on planted effects.

A *setting* is a planted effect and group sizes (``null:30/10`` = effect 0 with 30 SZ and 10 HC;
``1:72/75`` = effect 1 with 72 SZ and 75 HC). A *replicate* is one freshly generated synthetic
cohort of that setting (``make_demo_cohort``, seed 10000 + r). For each replicate, each data kind
(volumes, ICA time courses, spatial maps; prepared by the project's preprocessing) and each
model of the default study (config/config.yaml ``experiments``, widths of panels G/H) and task
(auto-encoding, classification), the model is trained with several seeds and per-subject
gradients are kept every few epochs; every family in ``calibration_families`` then runs on the
same spectra (see that module for the list, and docs/statistics.md for what each family is).

Usage (each replicate is one file, so runs resume and split freely, e.g. one SLURM job per shard)::

    python benchmarks/calibration.py run --settings null:30/10,1:72/75 --replicates 0-9 [--data timecourses]
    python benchmarks/calibration.py merge        # tables + src/autospec/stats/calibration_table.json

``run`` writes ``results/calibration_runs/<setting>/<data>/<plan>/r<NNN>.parquet`` (skipping
replicates already there); ``merge`` aggregates every file into ``benchmarks/results/calibration.{tsv,md,json}``
the package's ``calibration_table.json`` and the compact docs/calibration_table.md.
``benchmarks/calibration_slurm.sh`` submits shards.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from calibration_families import (
    group_families,
    input_families,
    retrain_record,
    subject_families,
    subject_matrix,
    subject_spectra,
)
from calibration_replicate import default_models, make_cohort_data, model_input, train_bundle

from autospec.stats import MAXT_SUMMARIES, design_columns

RESULTS = Path(__file__).resolve().parent / "results"
RUNS = Path(__file__).resolve().parents[1] / "results" / "calibration_runs"  # git-ignored
PARAMS = ("plan", "epochs", "every", "perms", "group_perms", "cv_perms", "retrain_perms")
ALL_SETTINGS = "null:20/20,null:72/75,null:30/10,null:15/45,0.5:20/20,1:20/20,2:20/20,0.5:72/75,1:72/75,2:72/75"


def parse_setting(text: str) -> tuple[float, int, int]:
    effect, sizes = text.split(":")
    n_sz, n_hc = sizes.split("/")
    return (0.0 if effect == "null" else float(effect)), int(n_sz), int(n_hc)


def setting_tag(effect: float, n_sz: int, n_hc: int) -> str:
    return f"{'null' if effect == 0 else f'effect{effect:g}'}_{n_sz}_{n_hc}"


def parse_range(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


#: default plan: the cheap models (MLP, 1-D CNN) auto-encoding with 3 seeds and classifying with 1
#: seed; ``--plan extended`` adds the costly models (LSTM, BERT, 3-D CNN) auto-encoding with 1 seed
#: (run it with --no-inputs next to the default plan); ``--plan full`` runs everything with 3 seeds
PLANS = {
    "default": "mlp,cnn1d=autoencode:3;mlp,cnn1d=classify:1",
    "extended": "lstm,bert,cnn3d=autoencode:1",
    "full": "mlp,cnn1d,lstm,bert,cnn3d=autoencode+classify:3",
}


def parse_plan(text: str) -> dict[str, dict[str, int]]:
    """``model[,model]=task[+task]:seeds;...`` (or a name in PLANS) -> {model: {task: seeds}}."""
    out: dict[str, dict[str, int]] = {}
    for entry in filter(None, PLANS.get(text, text).split(";")):
        models, rest = entry.split("=")
        tasks, _, seeds = rest.partition(":")
        for m in models.split(","):
            out.setdefault(m, {}).update(dict.fromkeys(tasks.split("+"), int(seeds or 3)))
    return out


def one_model(spec, task, seeds, ds, in_a, nuisance, rep, args) -> list[dict]:  # noqa: PLR0917
    """Train one model × task with its seeds and run every family on it."""
    x, y, groups = model_input(ds, spec.family), torch.from_numpy(ds.y), torch.from_numpy(ds.groups)
    t1 = time.perf_counter()
    bundles = [
        train_bundle(
            spec, task, x, y, groups, seed=s, epochs=args.epochs, every=args.every, check=(s == 0 and rep == 0)
        )
        for s in range(seeds)
    ]
    recs = group_families(bundles, in_a, rep, args.group_perms)
    subj, F0 = subject_families(bundles, in_a, rep, perms=args.perms, cv_perms=args.cv_perms, covariates=nuisance)
    recs += subj
    if task == "classify" and args.retrain_perms and spec.family in args.retrain_models:

        def null_features(perm: np.ndarray) -> np.ndarray:
            yp = torch.from_numpy(np.where(perm, 0, 1).astype(np.int64))
            b = train_bundle(spec, task, x, yp, groups, seed=0, epochs=args.epochs, every=args.every)
            return subject_matrix(subject_spectra(b.grads), MAXT_SUMMARIES)

        rng = np.random.default_rng([rep, int(in_a.sum()), len(in_a), 3])
        recs.append(retrain_record(F0, in_a, null_features, rng=rng, n_resamples=args.retrain_perms))
    wall = time.perf_counter() - t1
    metric = float(np.mean([b.final_metric for b in bundles]))
    return [
        {**r, "model": spec.family, "task": task, "seeds": seeds, "wall_s": wall, "final_metric": metric} for r in recs
    ]


def one_replicate(setting: tuple[float, int, int], rep: int, args: argparse.Namespace) -> dict[str, pd.DataFrame]:
    """Every data kind of one replicate (one cohort): data kind -> records."""
    effect, n_sz, n_hc = setting
    t0 = time.perf_counter()
    sets, pheno = make_cohort_data(getattr(args, "seed_base", 10_000) + rep, effect, n_sz, n_hc, args.data)
    prep = (time.perf_counter() - t0) / len(args.data)
    plan = parse_plan(args.plan)
    out = {}
    for data, ds in sets.items():
        t1 = time.perf_counter()
        in_a = ds.groups == 0  # group 0 = HC, group 1 = SZ (sorted names)
        cov = pheno.reindex(ds.subject_ids)
        nuisance, _ = design_columns({c: cov[c].to_numpy(dtype=object) for c in cov.columns}, list(ds.subject_ids))
        inputs = input_families(ds, in_a, rep, perms=args.perms, cv_perms=args.cv_perms) if args.inputs else []
        records = [
            {**r, "model": "input", "task": "-", "seeds": 0, "wall_s": prep + time.perf_counter() - t1} for r in inputs
        ]
        for spec in default_models():
            if spec.data != data or spec.family not in plan:
                continue
            for task, seeds in plan[spec.family].items():
                records += one_model(spec, task, seeds, ds, in_a, nuisance, rep, args)
        if not records:  # nothing of this data kind in the plan
            continue
        df = pd.DataFrame(records)
        df["data"], df["effect"], df["n_sz"], df["n_hc"], df["replicate"] = data, effect, n_sz, n_hc, rep
        for name in PARAMS:
            df[name] = getattr(args, name)  # merge refuses replicates run with different parameters
        out[data] = df
    return out


def cmd_run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    settings = [parse_setting(s) for s in args.settings.split(",")]
    plan_tag = args.plan if args.plan in PLANS else "custom-" + hashlib.sha256(args.plan.encode()).hexdigest()[:8]
    t0 = time.perf_counter()
    for rep in parse_range(args.replicates):
        for effect, n_sz, n_hc in settings:
            tag = setting_tag(effect, n_sz, n_hc)
            paths = {d: args.out / tag / d / plan_tag / f"r{rep:03d}.parquet" for d in args.data}
            todo = [d for d, p in paths.items() if not p.exists()]
            if not todo:
                continue
            sub = argparse.Namespace(**{**vars(args), "data": todo})
            done = one_replicate((effect, n_sz, n_hc), rep, sub)
            for data, df in done.items():
                path = paths[data]
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")  # shards never share a temporary
                df.to_parquet(tmp, index=False)
                tmp.replace(path)
                walls = df.groupby(["model", "task"])["wall_s"].first().round(1).to_dict()
                print(f"{tag} {data} r{rep}: {walls} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run replicates (one parquet file each; existing files are skipped)")
    run.add_argument("--settings", default=ALL_SETTINGS, help=f"effect:n_sz/n_hc,... (default {ALL_SETTINGS})")
    run.add_argument("--replicates", default="0-9", help="replicate ids, e.g. 0-9 or 0,3,5-7")
    run.add_argument("--data", type=lambda s: s.split(","), default=["volumes", "timecourses", "spatialmaps"])
    run.add_argument(
        "--plan",
        default="default",
        help=f"models, tasks and seeds: model[,model]=task[+task]:seeds;... or one of {PLANS}",
    )
    run.add_argument("--no-inputs", dest="inputs", action="store_false", help="skip the raw-input families")
    run.add_argument("--epochs", type=int, default=15, help="epochs (the default study's 15)")
    run.add_argument("--every", type=int, default=3, help="keep per-subject gradients every k-th epoch")
    run.add_argument("--perms", type=int, default=999, help="relabelings of the max-t tests")
    run.add_argument("--group-perms", type=int, default=99, help="relabelings with group spectra recomputed")
    run.add_argument("--cv-perms", type=int, default=199, help="relabelings of the classifier tests")
    run.add_argument("--retrain-perms", type=int, default=39, help="retrainings under permuted labels (0: skip)")
    run.add_argument("--retrain-models", type=lambda s: s.split(","), default=["mlp"])
    run.add_argument("--threads", type=int, default=1)
    run.add_argument("--seed-base", type=int, default=10_000, help="cohort seed = seed base + replicate")
    run.add_argument("--out", type=Path, default=RUNS)
    mg = sub.add_parser("merge", help="aggregate the replicate files into the calibration tables")
    mg.add_argument("--runs", type=Path, default=RUNS)
    mg.add_argument("--out", type=Path, default=RESULTS)
    mg.add_argument(
        "--package-table", type=Path, default=None, help="default: src/autospec/stats/calibration_table.json"
    )
    mg.add_argument("--docs-table", type=Path, default=None, help="default: docs/calibration_table.md")
    args = ap.parse_args(argv)
    if args.cmd == "run":
        return cmd_run(args)
    from calibration_report import merge

    return merge(args.runs, args.out, args.package_table, args.docs_table)


if __name__ == "__main__":
    raise SystemExit(main())
