"""Calibration of the group tests on the bundled synthetic cohort: false-positive rate and power.

For each replicate r (an independently generated cohort, seed r) and each effect size — ``null``
(effect 0: patients and controls drawn from one distribution) and ``effect<E>`` (the documented
planted effect scaled by E, see docs/demo_cohort.md) — one data set of the cohort is preprocessed
(FreeSurfer volumes or ICA time courses), a model is trained full-batch (auto-encoding by default)
with several seeds while group and per-subject spectra are recorded, and every test family is run:
the paper's per-step t-tests (singular values as samples), seed-level Welch and permutation tests,
subject-level Welch and permutation tests on σ(A_iᵀΔ_i) (family ``subject``) and on σ(A_i)
(family ``subject_act``, with ``--subject-act``). ``calibration_table`` then counts rejections at
alpha = 0.05 per family: the rate under ``null`` is the false-positive rate, under ``effect<E>`` the
power; ``rate_runs_any_fdr`` is the share of replicates where BH over the family rejects anything.

Results: ``benchmarks/results/calibration_<data>_<model>_<task>.{tsv,md,json}`` (quoted in the
README). Usage: ``python benchmarks/calibration.py [--data volumes|timecourses] [--model mlp|cnn1d|lstm]
[--effects 0,1,2,4] [--replicates 8] [--seeds 4] [--epochs 30] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from autospec.atomic import write_text_atomic
from autospec.data.cohort import load_cohort_config
from autospec.data.dataset import save_dataset
from autospec.data.preprocess import preprocess
from autospec.data.synthetic import make_demo_cohort
from autospec.rundir import RunDir
from autospec.stats import paper_step_tests, seed_tests, subject_tests
from autospec.stats.multiple import calibration_table, markdown_table
from autospec.training.config import load_run_config
from autospec.training.loop import train

RESULTS = Path(__file__).resolve().parent / "results"


def conditions(effects: list[float]) -> dict[str, float]:
    """Condition name -> planted effect size: ``null`` for 0, ``effect<E>`` otherwise."""
    return {("null" if e == 0 else f"effect{e:g}"): e for e in effects}


def one_replicate(work: Path, rep: int, effect: float, args) -> list[pd.DataFrame]:
    cohort = make_demo_cohort(work / "cohort", seed=rep, effect=effect, n_sz=args.n_per_group,
                              n_hc=args.n_per_group, small=True)  # fmt: skip
    cfg = load_cohort_config(cohort / "cohort.yaml", "demo")
    ds, _ = preprocess(cfg, args.data)
    data = work / f"{args.data}.npz"
    save_dataset(data, ds)
    names = {i: str(n) for i, n in enumerate(ds.group_names)}
    sizes = {i: int((ds.groups == i).sum()) for i in names}
    runs, subject_df = [], None
    for seed in range(args.seeds):
        run_cfg = load_run_config(
            {
                "data": str(data),
                "model": {"family": args.model, "task": args.task, "hidden": args.hidden, "activation": "relu"},
                "training": {"epochs": args.epochs, "lr": 1e-3, "seed": seed, "threads": 1, "checkpoint_every": 10**6},
                "recording": {
                    "every": args.every,
                    "subjects": seed == 0,
                    "subject_stats": ["grad", "act"] if args.subject_act else ["grad"],
                },
            }
        )
        out = work / f"seed{seed}"
        train(run_cfg, out, progress=False)
        runs.append(pd.read_parquet(RunDir(out).spectra))
        if seed == 0:
            subject_df = pd.read_parquet(RunDir(out).subject_spectra)
    subject_groups = dict(enumerate(ds.groups.tolist()))
    tables = [
        paper_step_tests(runs[0], names),
        seed_tests(runs, names, sizes, n_resamples=args.permutations, seed=rep),
        subject_tests(subject_df, subject_groups, names, n_resamples=args.permutations, seed=rep),
    ]
    if args.subject_act:
        act = subject_tests(subject_df, subject_groups, names, n_resamples=args.permutations, seed=rep, stat="act")
        tables.append(act.assign(family="subject_act"))
    return [t.assign(replicate=rep) for t in tables]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=["volumes", "timecourses"], default="volumes")
    ap.add_argument("--model", choices=["mlp", "cnn1d", "lstm"], default="mlp")
    ap.add_argument(
        "--hidden",
        type=lambda s: [int(v) for v in s.split(",")],
        default=[32],
        help="hidden widths, comma-separated (default 32)",
    )
    ap.add_argument(
        "--effects",
        type=lambda s: [float(v) for v in s.split(",")],
        default=[0.0, 1.0],
        help="planted effect sizes, comma-separated; 0 is the null (default 0,1)",
    )
    ap.add_argument(
        "--subject-act", action="store_true", help="also test per-subject σ(A_i) of every layer (family subject_act)"
    )
    ap.add_argument("--replicates", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--every", type=int, default=5, help="record every k-th epoch")
    ap.add_argument("--n-per-group", type=int, default=20)
    ap.add_argument("--permutations", type=int, default=999)
    ap.add_argument(
        "--task",
        choices=["autoencode", "classify"],
        default="autoencode",
        help="autoencode: groups never enter the loss, so effect 0 is a true null; classify: "
        "the group is the class label, so spectra differ by construction even at effect 0",
    )
    ap.add_argument("--quick", action="store_true", help="2 replicates, 2 seeds, 6 epochs")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.quick:
        args.replicates, args.seeds, args.epochs = 2, 2, 6
    conds = conditions(args.effects)
    t0 = time.perf_counter()
    results: dict[str, list[pd.DataFrame]] = {c: [] for c in conds}
    for rep in range(args.replicates):
        for cond, effect in conds.items():
            with tempfile.TemporaryDirectory() as tmp:
                tables = one_replicate(Path(tmp), rep, effect, args)
            # one "run" per replicate and family for calibration_table
            for fam_table in tables:
                results[cond].append(fam_table)
            print(f"replicate {rep} {cond}: done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    table = calibration_table(results, alpha=0.05, null_conditions=["null"])
    stem = f"calibration_{args.data}_{args.model}_{args.task}" + ("_quick" if args.quick else "")
    args.out.mkdir(parents=True, exist_ok=True)
    params = {k: v for k, v in vars(args).items() if k != "out"}
    params["wall_s"] = round(time.perf_counter() - t0, 1)
    write_text_atomic(args.out / f"{stem}.tsv", table.to_csv(sep="\t", index=False))
    write_text_atomic(args.out / f"{stem}.json", json.dumps({"params": params, "conditions": conds}, indent=2) + "\n")
    md = f"Parameters: {json.dumps(params)}\n\n" + markdown_table(table)
    write_text_atomic(args.out / f"{stem}.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
