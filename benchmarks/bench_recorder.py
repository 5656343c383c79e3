"""Cost of recording spectra, side by side in one process (issue 2's benchmark).

For each model (MLP 784-32-32-10, 1D CNN over 53 × 150 time courses, the project's LSTM) and
batch size N, one full-batch training step (forward, backward, Adam; the same input every step)
is timed plain, recorded with ``stats=("grad",)`` and recorded with all three stats, interleaved
round by round so that load drifts hit every mode alike; medians are compared as ratios. The
per-sample route (torch.func per-sample gradients → group sums → SVD) computes the same group
spectra; its time and its largest relative disagreement with the recorder are reported too.

The one-off cost of the checks of the first recorded step (issue 12: use coverage, and with
groups the sample-coupling probes) is measured for an MLP and a 1D CNN (``--part probe``): the
first recorded step of a fresh recorder minus a later recorded step, as ms and as a ratio to a
plain step.

Results go to ``benchmarks/results/recorder.json``/``recorder.md`` (quoted in the README) and
``recorder_probe.json``/``recorder_probe.md``.
Usage: ``python benchmarks/bench_recorder.py [--quick] [--threads 2] [--part timing|probe|all]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from autospec import SpectralRecorder
from autospec.atomic import write_text_atomic
from autospec.models import build_model
from autospec.versions import host_info

RESULTS = Path(__file__).resolve().parent / "results"
MODES = ("plain", "grad", "all")


def make_case(name: str, n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    if name == "mlp":
        model = nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10))
        x, c = torch.randn(n, 784, generator=g), 10
    elif name == "cnn1d":
        model = build_model("cnn1d", "classify", (53, 150), 2, hidden=(16,))
        x, c = torch.randn(n, 53, 150, generator=g), 2
    elif name == "lstm":
        model = build_model("lstm", "classify", (50, 53), 2, hidden=(32,))
        x, c = torch.randn(n, 50, 53, generator=g), 2
    else:
        raise ValueError(name)
    y = torch.randint(0, c, (n,), generator=g)
    groups = torch.randint(0, 2, (n,), generator=g)
    return model, x, y, groups


def timed_steps(model, x, y, groups, rounds: int):
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    recs = {"grad": SpectralRecorder(model, stats=("grad",)), "all": SpectralRecorder(model)}

    def step(mode):
        opt.zero_grad()
        if mode == "plain":
            F.cross_entropy(model(x), y).backward()
        else:
            with recs[mode].record(groups=groups):
                F.cross_entropy(model(x), y).backward()
        opt.step()

    for mode in MODES:  # warm-up (also fills the act cache, as in any run after step 0)
        step(mode)
    times = {m: [] for m in MODES}
    for _ in range(rounds):
        for mode in MODES:
            t0 = time.perf_counter()
            step(mode)
            times[mode].append(time.perf_counter() - t0)
    return {m: statistics.median(v) for m, v in times.items()}


def per_sample_route(model, x, y, groups):
    """Group spectra the per-sample way: N × |θ| gradients, group sums, float64 SVD."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_one(p, xi, yi):
        out = functional_call(model, p, (xi.unsqueeze(0),))
        return F.cross_entropy(out, yi.unsqueeze(0))

    t0 = time.perf_counter()
    per_sample = vmap(grad(loss_one), in_dims=(None, 0, 0))(params, x, y)
    n = x.shape[0]
    spectra = {}
    for key, g in per_sample.items():
        if g.dim() < 3:
            continue
        for gid in groups.unique().tolist():
            gsum = g[groups == gid].sum(0) / n
            spectra[(key, gid)] = torch.linalg.svdvals(gsum.reshape(gsum.shape[0], -1).double())
    return time.perf_counter() - t0, spectra


def recorded_once(model, x, y, groups):
    rec = SpectralRecorder(model, stats=("grad",))
    model.zero_grad()
    t0 = time.perf_counter()
    with rec.record(groups=groups) as snap:
        F.cross_entropy(model(x), y).backward()
    return time.perf_counter() - t0, snap


def max_rel_diff(snap, spectra) -> float:
    worst = 0.0
    for (key, gid), want in spectra.items():
        got = torch.as_tensor(snap.singular_values(key, "grad", gid))
        want = want[: got.numel()]
        keep = want >= 1e-6 * want[0]
        worst = max(worst, float(((got[keep] - want[keep]).abs() / want[keep]).max()))
    return worst


def probe_cost(name: str, n: int, rounds: int) -> dict:
    """Median time spent in the first recorded step's checks, with and without groups.

    Timed inside the checks themselves (model probe, loss probe, coverage walk), so load drifts of
    the rest of the step do not enter; every step gets a fresh batch (as in mini-batch training).
    """
    from unittest import mock

    from autospec.spectral import coverage, probe

    model, _, y, groups = make_case(name, n)
    batches = [make_case(name, n, seed=s)[1] for s in range(1, 4)]
    spent = [0.0]

    def timed(fn):
        def run(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - t0

        return run

    def step(rec=None, g=None, i=0):
        x = batches[i % len(batches)]
        model.zero_grad()
        t0 = time.perf_counter()
        if rec is None:
            F.cross_entropy(model(x), y).backward()
        else:
            with rec.record(groups=g):
                F.cross_entropy(model(x), y).backward()
        return time.perf_counter() - t0

    patches = [
        mock.patch.object(probe, "model_probe", timed(probe.model_probe)),
        mock.patch.object(probe, "loss_probe", timed(probe.loss_probe)),
        mock.patch.object(coverage, "uncovered_uses", timed(coverage.uncovered_uses)),
    ]
    plain, checks_g, checks_n, first_g, later_g = [], [], [], [], []
    with patches[0], patches[1], patches[2]:
        step()  # warm-up (and one-off imports)
        for r in range(rounds + 1):
            plain.append(step(i=r))
            rec = SpectralRecorder(model, stats=("grad",))
            spent[0] = 0.0
            first_g.append(step(rec, groups, r))
            checks_g.append(spent[0])
            later_g.append(step(rec, groups, r + 1))
            rec = SpectralRecorder(model, stats=("grad",))
            spent[0] = 0.0
            step(rec, None, r)
            checks_n.append(spent[0])
    med = statistics.median
    p = med(plain[1:])  # the first round pays one-off imports (vmap, sympy): left out
    return {
        "model": name,
        "N": n,
        "plain_ms": 1e3 * p,
        "probe_groups_ms": 1e3 * med(checks_g[1:]),
        "probe_groups_ratio": med(checks_g[1:]) / p,
        "coverage_only_ms": 1e3 * med(checks_n[1:]),
        "coverage_only_ratio": med(checks_n[1:]) / p,
        "first_minus_later_ms": 1e3 * med([a - b for a, b in zip(first_g[1:], later_g[1:])]),
        "recorded_ms": 1e3 * med(later_g[1:]),
    }


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {**host_info(), "cpu": cpu, "torch": torch.__version__, "threads": torch.get_num_threads()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small N and few rounds (smoke run)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--part", choices=("timing", "probe", "all"), default="all")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.part in ("probe", "all"):
        run_probe(args)
    if args.part == "probe":
        return 0
    sizes = (32, 256) if args.quick else (32, 256, 2048)
    rows = []
    for name in ("mlp", "cnn1d", "lstm"):
        for n in sizes:
            rounds = 3 if args.quick else (7 if n == 2048 else 15)
            model, x, y, groups = make_case(name, n)
            med = timed_steps(model, x, y, groups, rounds)
            row = {
                "model": name,
                "N": n,
                "plain_ms": 1e3 * med["plain"],
                "grad_ms": 1e3 * med["grad"],
                "all_ms": 1e3 * med["all"],
                "grad_ratio": med["grad"] / med["plain"],
                "all_ratio": med["all"] / med["plain"],
            }
            if n == max(sizes):
                t_rec, snap = recorded_once(model, x, y, groups)
                t_ps, spectra = per_sample_route(model, x, y, groups)
                row.update(
                    recorded_once_ms=1e3 * t_rec,
                    per_sample_ms=1e3 * t_ps,
                    speedup_vs_per_sample=t_ps / t_rec,
                    max_rel_diff_vs_per_sample=max_rel_diff(snap, spectra),
                )
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    result = {"machine": machine(), "quick": args.quick, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "recorder_quick" if args.quick else "recorder"
    write_text_atomic(args.out / f"{stem}.json", json.dumps(result, indent=2) + "\n")
    write_text_atomic(args.out / f"{stem}.md", to_markdown(result))
    print(to_markdown(result))
    return 0


def run_probe(args) -> None:
    rows = [probe_cost(name, 256, 3 if args.quick else 11) for name in ("mlp", "cnn1d")]
    for r in rows:
        print(json.dumps(r), file=sys.stderr, flush=True)
    result = {"machine": machine(), "quick": args.quick, "rows": rows}
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu']} ({m.get('hostname', '?')}), torch {m['torch']}, {m['threads']} threads. One-off cost of the "
        "first recorded step's checks, timed inside them (median over fresh recorders, stats=('grad',), fresh batch "
        "per step); 'first − later' is the whole first recorded step minus a later one (noisier).",
        "",
        "| model | N | plain step ms | recorded step ms | with groups: coverage + coupling probes ms (× plain) | "
        "first − later recorded step ms | without groups: coverage check ms (× plain) |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | {r['N']} | {r['plain_ms']:.1f} | {r['recorded_ms']:.1f} | {r['probe_groups_ms']:.1f} "
        f"({r['probe_groups_ratio']:.1f}×) | {r['first_minus_later_ms']:.1f} | {r['coverage_only_ms']:.1f} "
        f"({r['coverage_only_ratio']:.2f}×) |"
        for r in rows
    ]
    stem = "recorder_probe_quick" if args.quick else "recorder_probe"
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / f"{stem}.json", json.dumps(result, indent=2) + "\n")
    write_text_atomic(args.out / f"{stem}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def to_markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu']} ({m.get('hostname', '?')}), torch {m['torch']}, {m['threads']} threads, "
        f"{m.get('python', platform.python_version())}.",
        "",
        "| model | N | plain ms | grad-only ms (ratio) | all stats ms (ratio) | per-sample route ms | speed-up | max rel. diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        ps = (
            f"{r['per_sample_ms']:.1f} | {r['speedup_vs_per_sample']:.1f}× | {r['max_rel_diff_vs_per_sample']:.1e}"
            if "per_sample_ms" in r
            else " | | "
        )
        lines.append(
            f"| {r['model']} | {r['N']} | {r['plain_ms']:.1f} | {r['grad_ms']:.1f} ({r['grad_ratio']:.2f}) | "
            f"{r['all_ms']:.1f} ({r['all_ratio']:.2f}) | {ps} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    raise SystemExit(main())
