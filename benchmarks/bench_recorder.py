"""Cost of recording spectra, side by side in one process (issues 2, 12 and 14).

Parts (``--part``, default all):

* ``timing`` — one full-batch training step (forward, backward, Adam; the same input every step)
  of the MLP 784-32-32-10 (N = 32 … 4096), the project's 1-D CNN over 53 × 150 time courses and
  its LSTM, timed plain and recorded (``stats=("grad",)`` and all three stats; 2 groups), with the
  spectra computed off the critical path (the default) and inline (``sync=True``). Modes run
  interleaved round by round, each round a block of steps followed by waiting for every spectrum
  of the block (so a recorded step's cost includes its spectra: throughput, not just the training
  thread's share); medians of the rounds are compared as ratios. The training thread's own CPU
  time per step (``time.thread_time``, blind to other processes' load) is given beside.
* ``per_sample`` — at N = 2048, the recorded step (steady state, spectra included; and the first,
  probing step) against the per-sample route (torch.func per-sample gradients → group sums → SVD)
  computing the same group spectra, with their largest relative disagreement.
* ``probe`` — the one-off cost of the first recorded step's checks (``recorder_probe.md``).
* ``wide`` — a BERT-base feed-forward layer (768 → 3072, N·T = 32 × 128 = 4096 rows, 2 groups,
  top-64): plain step vs exact σ and vs top-k by warm-started subspace iteration (error bounds).

Results: ``benchmarks/results/recorder.json``/``.md`` (timing, per_sample, wide, targets) and
``recorder_probe.json``/``.md``. Usage:
``python benchmarks/bench_recorder.py [--quick] [--threads 1] [--part timing|per_sample|probe|wide|all]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

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
MODES = ("plain", "grad", "all", "grad_sync", "all_sync")
TARGETS = {"grad": 1.3, "all": 2.0, "flat": 0.2, "per_sample": 5.0, "wide": 1.2}
#: where models and batches live (``--device``; benchmarks/gpu_check.sh runs with cuda)
WHERE = SimpleNamespace(device=torch.device("cpu"))


def _sync() -> None:
    """Wait for queued device work before reading a clock (CUDA runs asynchronously)."""
    if WHERE.device.type == "cuda":
        torch.cuda.synchronize(WHERE.device)


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
    return model.to(WHERE.device), x.to(WHERE.device), y.to(WHERE.device), groups.to(WHERE.device)


def _recorders(model):
    return {
        "grad": SpectralRecorder(model, stats=("grad",)),
        "all": SpectralRecorder(model),
        "grad_sync": SpectralRecorder(model, stats=("grad",), sync=True),
        "all_sync": SpectralRecorder(model, sync=True),
    }


def timed_steps(model, x, y, groups, rounds: int) -> dict[str, dict[str, float]]:
    """Median wall time per step (spectra included) and training-thread CPU time per step, by mode."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    recs = _recorders(model)

    def step(mode):
        opt.zero_grad()
        if mode == "plain":
            F.cross_entropy(model(x), y).backward()
        else:
            with recs[mode].record(groups=groups):
                F.cross_entropy(model(x), y).backward()
        opt.step()

    for mode in MODES:  # warm-up: the probe step, then a step that fills the input cache
        for _ in range(2):
            step(mode)
        if mode in recs:
            recs[mode].wait()
    _sync()
    t0 = time.perf_counter()
    step("plain")
    _sync()
    block = int(min(10, max(1, 0.05 / max(time.perf_counter() - t0, 1e-6))))
    wall: dict[str, list[float]] = {m: [] for m in MODES}
    cpu: dict[str, list[float]] = {m: [] for m in MODES}
    for _ in range(rounds):
        for mode in MODES:
            c0, t0 = time.thread_time(), time.perf_counter()
            for _ in range(block):
                step(mode)
            c1 = time.thread_time()
            if mode in recs:
                recs[mode].wait()  # the spectra of this block are part of its cost
            _sync()
            wall[mode].append((time.perf_counter() - t0) / block)
            cpu[mode].append((c1 - c0) / block)
    return {m: {"wall": statistics.median(wall[m]), "cpu": statistics.median(cpu[m])} for m in MODES}


def per_sample_route(model, x, y, groups):
    """Group spectra the per-sample way: N × |θ| gradients, group sums, float64 SVD."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_one(p, xi, yi):
        out = functional_call(model, p, (xi.unsqueeze(0),))
        return F.cross_entropy(out, yi.unsqueeze(0))

    _sync()
    t0 = time.perf_counter()
    per_sample = vmap(grad(loss_one), in_dims=(None, 0, 0))(params, x, y)
    n = x.shape[0]
    spectra = {}
    for key, g in per_sample.items():
        if g.dim() < 3:
            continue
        for gid in groups.unique().tolist():
            gsum = g[groups == gid].sum(0) / n
            spectra[(key, gid)] = torch.linalg.svdvals(gsum.reshape(gsum.shape[0], -1).double()).cpu()
    return time.perf_counter() - t0, spectra


def recorded_steps(model, x, y, groups, steady: int = 3):
    """(first step s, median later step s, last snapshot): grad-only, spectra included."""
    rec = SpectralRecorder(model, stats=("grad",))
    times = []
    snap = None
    for _ in range(1 + steady):
        model.zero_grad()
        _sync()
        t0 = time.perf_counter()
        with rec.record(groups=groups) as step_snap:
            F.cross_entropy(model(x), y).backward()
        snap = step_snap.wait()
        times.append(time.perf_counter() - t0)
    return times[0], statistics.median(times[1:]), snap


def max_rel_diff(snap, spectra) -> float:
    worst = 0.0
    for (key, gid), want in spectra.items():
        got = torch.as_tensor(snap.singular_values(key, "grad", gid))
        want = want[: got.numel()]
        keep = want >= 1e-6 * want[0]
        worst = max(worst, float(((got[keep] - want[keep]).abs() / want[keep]).max()))
    return worst


def run_timing(args) -> list[dict]:
    if args.smoke:
        sizes = {"mlp": (32,)}
    elif args.quick:
        sizes = {"mlp": (32, 256), "cnn1d": (32,), "lstm": (32,)}
    else:
        sizes = {"mlp": (32, 256, 2048, 4096), "cnn1d": (32, 256, 2048), "lstm": (32, 256, 2048)}
    rows = []
    for name, ns in sizes.items():
        for n in ns:
            rounds = (
                1
                if args.smoke
                else 3
                if args.quick
                else (3 if (name == "lstm" and n >= 2048) else 7 if n >= 2048 else 15)
            )
            model, x, y, groups = make_case(name, n)
            med = timed_steps(model, x, y, groups, rounds)
            plain = med["plain"]
            row = {"model": name, "N": n, "rounds": rounds, "plain_ms": 1e3 * plain["wall"]}
            for m in MODES[1:]:
                row[f"{m}_ms"] = 1e3 * med[m]["wall"]
                row[f"{m}_ratio"] = med[m]["wall"] / plain["wall"]
                row[f"{m}_cpu_ratio"] = med[m]["cpu"] / plain["cpu"]
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def run_per_sample(args) -> list[dict]:
    n = 256 if args.quick else 2048
    rows = []
    for name in ("mlp", "cnn1d", "lstm"):
        model, x, y, groups = make_case(name, n)
        first, steady, snap = recorded_steps(model, x, y, groups, steady=1 if args.quick else 3)
        t_ps, spectra = per_sample_route(model, x, y, groups)
        row = {
            "model": name,
            "N": n,
            "recorded_first_ms": 1e3 * first,
            "recorded_steady_ms": 1e3 * steady,
            "per_sample_ms": 1e3 * t_ps,
            "speedup_steady": t_ps / steady,
            "speedup_first": t_ps / first,
            "max_rel_diff": max_rel_diff(snap, spectra),
        }
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def run_wide(args) -> dict:
    """BERT-base feed-forward layer: plain vs exact vs top-64 iteration (interleaved rounds)."""
    if args.smoke:
        n, t, d_in, d_out, k = 4, 16, 48, 96, 8
    elif args.quick:
        n, t, d_in, d_out, k = 8, 64, 384, 1536, 32
    else:
        n, t, d_in, d_out, k = 32, 128, 768, 3072, 64
    torch.manual_seed(0)
    layer = nn.Linear(d_in, d_out).to(WHERE.device)
    x = torch.randn(n, t, d_in, device=WHERE.device)
    target = torch.randn(n, t, d_out, device=WHERE.device)
    groups = torch.arange(n, device=WHERE.device) % 2
    opt = torch.optim.Adam(layer.parameters(), lr=1e-4)
    recs = {
        "exact": SpectralRecorder(layer, stats=("grad",), top_k=k),
        "iterative": SpectralRecorder(layer, stats=("grad",), top_k=k, method="iterative"),
    }
    snaps = {}

    def step(mode):
        opt.zero_grad()
        if mode == "plain":
            F.mse_loss(layer(x), target).backward()
        else:
            with recs[mode].record(groups=groups) as snaps[mode]:
                F.mse_loss(layer(x), target).backward()
        opt.step()

    modes = ("plain", "exact", "iterative")
    for m in modes:
        step(m)
        step(m)
        if m in recs:
            recs[m].wait()
    times: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    rounds = 1 if args.smoke else 2 if args.quick else 5
    for _ in range(rounds):
        for m in modes:
            _sync()
            c0, t0 = time.thread_time(), time.perf_counter()
            for _ in range(2):
                step(m)
            cpu[m].append((time.thread_time() - c0) / 2)
            if m in recs:
                recs[m].wait()
            _sync()
            times[m].append((time.perf_counter() - t0) / 2)
    med = {m: statistics.median(v) for m, v in times.items()}
    # accuracy of the last iterated step against an exact recorder on the same gradient
    opt.zero_grad()
    check = SpectralRecorder(layer, stats=("grad",), top_k=k, sync=True)
    it = recs["iterative"]
    with check.record(groups=groups) as exact_snap, it.record(groups=groups) as iter_snap:
        F.mse_loss(layer(x), target).backward()
    worst_err, worst_bound, covered = 0.0, 0.0, True
    for gid in (None, 0, 1):
        e, v = exact_snap.singular_values("weight", group=gid), iter_snap.singular_values("weight", group=gid)
        b = iter_snap.error_bound("weight", group=gid)
        worst_err = max(worst_err, float(np.max(np.abs(e - v) / e[0])))
        worst_bound = max(worst_bound, float(np.max(b / e[0])))
        covered &= bool(np.all(np.abs(e - v) <= b + 1e-12 * e[0]))
    row = {
        "shape": [d_out, d_in],
        "rows": n * t,
        "groups": 2,
        "top_k": k,
        "plain_ms": 1e3 * med["plain"],
        "exact_ms": 1e3 * med["exact"],
        "iterative_ms": 1e3 * med["iterative"],
        "exact_ratio": med["exact"] / med["plain"],
        "iterative_ratio": med["iterative"] / med["plain"],
        "iterative_cpu_ratio": statistics.median(cpu["iterative"]) / statistics.median(cpu["plain"]),
        "max_abs_err_rel_sigma1": worst_err,
        "max_bound_rel_sigma1": worst_bound,
        "errors_within_bounds": covered,
    }
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def probe_cost(name: str, n: int, rounds: int) -> dict:
    """Median time spent in the first recorded step's checks, with and without groups (timed inside
    the checks; every step gets a fresh batch, as in mini-batch training)."""
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
            with rec.record(groups=g) as snap:
                F.cross_entropy(model(x), y).backward()
            snap.wait()
        return time.perf_counter() - t0

    patches = [
        mock.patch.object(probe, "model_probe", timed(probe.model_probe)),
        mock.patch.object(probe, "loss_probe", timed(probe.loss_probe)),
        mock.patch.object(coverage, "uncovered_uses", timed(coverage.uncovered_uses)),
    ]
    plain, checks_g, checks_n, first_g, later_g = [], [], [], [], []
    with patches[0], patches[1], patches[2]:
        step()
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
    return {
        **host_info(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "device": str(WHERE.device)
        + (f" ({torch.cuda.get_device_name(WHERE.device)})" if WHERE.device.type == "cuda" else ""),
    }


def run_probe(args, stem_suffix: str) -> None:
    rows = [probe_cost(name, 256, 3 if args.quick else 11) for name in ("mlp", "cnn1d")]
    for r in rows:
        print(json.dumps(r), file=sys.stderr, flush=True)
    result = {"machine": machine(), "quick": args.quick, "rows": rows}
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu']} ({m.get('hostname', '?')}), torch {m['torch']}, {m['threads']} threads. One-off cost of the "
        "first recorded step's checks, timed inside them (median over fresh recorders, stats=('grad',), fresh batch "
        "per step); 'first − later' is the whole first recorded step minus a later one, spectra included (noisier).",
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
    stem = "recorder_probe" + stem_suffix
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / f"{stem}.json", json.dumps(result, indent=2) + "\n")
    write_text_atomic(args.out / f"{stem}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def targets(result: dict) -> list[tuple[str, str, str, bool | None]]:
    """(target, where, measured, met) for every target of issue 14 this benchmark measures."""
    out: list[tuple[str, str, str, bool | None]] = []
    mlp = [r for r in result.get("timing", []) if r["model"] == "mlp"]
    for r in mlp:
        for mode in ("grad", "all"):
            v = r[f"{mode}_ratio"]
            out.append((f"MLP {mode} ≤ {TARGETS[mode]}×", f"N={r['N']}", f"{v:.2f}×", v <= TARGETS[mode]))
    if len(mlp) > 1:
        for mode in ("grad", "all"):
            vals = np.array([r[f"{mode}_ratio"] for r in mlp])
            spread = float(np.max(np.abs(vals / np.median(vals) - 1)))
            where = f"N={mlp[0]['N']}…{mlp[-1]['N']}"
            out.append((f"MLP {mode} ratio flat (±20 %)", where, f"±{spread:.0%} of the median", spread <= 0.2))
    for r in result.get("per_sample", []):
        v = r["speedup_steady"]
        out.append(
            (f"≥ {TARGETS['per_sample']}× faster than per-sample", f"{r['model']} N={r['N']}", f"{v:.1f}×", v >= 5)
        )
    w = result.get("wide")
    if w:
        v = w["iterative_ratio"]
        out.append(("BERT-base layer top-64 ≤ 1.2× plain", f"{w['shape']}, {w['rows']} rows", f"{v:.2f}×", v <= 1.2))
    return out


def to_markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu']} ({m.get('hostname', '?')}, {m['cores']} cores), torch {m['torch']}, "
        f"{m['threads']} torch threads for training (the spectra worker: 1 more thread), Python {m['python']}, "
        f"device {m.get('device', 'cpu')}; "
        f"1-min load average {result['load_start']:.2f} at start, {result['load_end']:.2f} at end "
        "(the cores are shared with other jobs).",
        "",
    ]
    if result.get("timing"):
        lines += [
            "One full-batch step (forward, backward, Adam), 2 groups. Ratio = recorded / plain wall time per step, "
            "spectra included (each round: a block of steps, then waiting for their spectra); medians of "
            "interleaved rounds. *async*: spectra on the worker thread (default); *sync*: inside the step. "
            "CPU = the training thread's own CPU time ratio (what the worker leaves on the critical path).",
            "",
            "| model | N | plain ms | grad async | grad sync | all async | all sync | grad CPU | all CPU |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in result["timing"]:
            lines.append(
                f"| {r['model']} | {r['N']} | {r['plain_ms']:.2f} | {r['grad_ratio']:.2f} | {r['grad_sync_ratio']:.2f} "
                f"| {r['all_ratio']:.2f} | {r['all_sync_ratio']:.2f} | {r['grad_cpu_ratio']:.2f} | {r['all_cpu_ratio']:.2f} |"
            )
        lines.append("")
    if result.get("per_sample"):
        lines += [
            "Against the per-sample route (torch.func per-sample gradients → group sums → SVD), same group spectra; "
            "recorded = grad only, spectra included.",
            "",
            "| model | N | recorded step ms (steady) | first step ms (probes) | per-sample ms | speed-up steady | "
            "speed-up first | max rel. diff |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in result["per_sample"]:
            lines.append(
                f"| {r['model']} | {r['N']} | {r['recorded_steady_ms']:.1f} | {r['recorded_first_ms']:.1f} | "
                f"{r['per_sample_ms']:.1f} | {r['speedup_steady']:.1f}× | {r['speedup_first']:.1f}× | "
                f"{r['max_rel_diff']:.1e} |"
            )
        lines.append("")
    w = result.get("wide")
    if w:
        lines += [
            f"Wide layer: Linear {w['shape'][1]} → {w['shape'][0]} (BERT-base feed-forward), {w['rows']} rows, "
            f"{w['groups']} groups, top-{w['top_k']}, MSE loss, Adam; async; spectra included.",
            "",
            "| plain ms | exact σ ms (ratio) | top-k iteration ms (ratio) | top-k training-thread CPU ratio | "
            "max error / σ₁ | max bound / σ₁ | errors within bounds |",
            "|---|---|---|---|---|---|---|",
            f"| {w['plain_ms']:.1f} | {w['exact_ms']:.1f} ({w['exact_ratio']:.2f}) | {w['iterative_ms']:.1f} "
            f"({w['iterative_ratio']:.2f}) | {w.get('iterative_cpu_ratio', float('nan')):.2f} | "
            f"{w['max_abs_err_rel_sigma1']:.1e} | {w['max_bound_rel_sigma1']:.1e} | {w['errors_within_bounds']} |",
            "",
        ]
    rows = targets(result)
    if rows:
        lines += ["Targets (issue 14):", "", "| target | where | measured | met |", "|---|---|---|---|"]
        lines += [f"| {t} | {w_} | {v} | {'yes' if ok else 'NO'} |" for t, w_, v, ok in rows]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes and few rounds")
    ap.add_argument("--smoke", action="store_true", help="the smallest sizes, one round: checks the script runs")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the training thread")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--part", choices=("timing", "per_sample", "probe", "wide", "all"), default="all")
    ap.add_argument("--suffix", default="", help="appended to the result files' names (e.g. _threads2)")
    ap.add_argument("--device", default="cpu", help="where models and batches live (cpu, cuda)")
    args = ap.parse_args(argv)
    args.quick = args.quick or args.smoke
    WHERE.device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    suffix = args.suffix + ("_quick" if args.quick else "")
    if args.part in ("probe", "all"):
        run_probe(args, suffix)
        if args.part == "probe":
            return 0
    result: dict = {"machine": machine(), "quick": args.quick, "load_start": os.getloadavg()[0]}
    if args.part in ("timing", "all"):
        result["timing"] = run_timing(args)
    if args.part in ("per_sample", "all"):
        result["per_sample"] = run_per_sample(args)
    if args.part in ("wide", "all"):
        result["wide"] = run_wide(args)
    result["load_end"] = os.getloadavg()[0]
    result["targets"] = [{"target": t, "where": w, "measured": v, "met": ok} for t, w, v, ok in targets(result)]
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "recorder" + suffix
    write_text_atomic(args.out / f"{stem}.json", json.dumps(result, indent=2) + "\n")
    write_text_atomic(args.out / f"{stem}.md", to_markdown(result))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
