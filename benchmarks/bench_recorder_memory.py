"""Memory (and time) of a recorded step with many groups, before and after issue 12's routes.

Two cases from issue 12 ("Memory"), float32 MLPs of width W with groups:

* ``per_subject`` — one group per sample (K = N): the old code padded every group's rows to N,
  (K+1)·N·W·8 bytes per weight, quadratic in N;
* ``n_ge_w`` — more samples than the width (N ≥ W) and K groups: the old code formed K+1 float64
  W × W gradients per weight; the new one keeps a group's raw rows while it has fewer than W
  (QR-core route) and forms only the whole batch's gradient.

Each code version runs in a fresh subprocess. On CPU the number is the extra peak resident memory
(``VmHWM``, reset through ``/proc/self/clear_refs``) of a recorded step over a plain step of the
same process; on CUDA it is ``torch.cuda.max_memory_allocated`` (exact). "first" is the first
recorded step, which runs the one-off checks (coupling probes); the main column is a later step.
Times: recorded/plain medians, interleaved in one process. The baseline is any earlier source tree of the
package, e.g. the main branch before the change::

    git archive <rev> src | tar -x -C /tmp/autospec_base
    python benchmarks/bench_recorder_memory.py --baseline /tmp/autospec_base/src

Results go to ``benchmarks/results/recorder_memory.{json,md}`` (``--device cuda``: ``..._cuda``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
HERE_SRC = Path(__file__).resolve().parents[1] / "src"
CASES = {
    "cpu": {"per_subject": {"W": 1024, "N": 256, "K": 256}, "n_ge_w": {"W": 1024, "N": 2048, "K": 8}},
    "cuda": {"per_subject": {"W": 1024, "N": 256, "K": 256}, "n_ge_w": {"W": 2048, "N": 4096, "K": 8}},
}


def worker(case: dict[str, int], device: str, rounds: int) -> dict[str, float]:
    import torch
    import torch.nn.functional as F
    from torch import nn

    from autospec import SpectralRecorder

    torch.manual_seed(0)
    w, n, k = case["W"], case["N"], case["K"]
    dev = torch.device(device)
    model = nn.Sequential(nn.Linear(w, w), nn.ReLU(), nn.Linear(w, w), nn.ReLU(), nn.Linear(w, 10)).to(dev)
    x, y = torch.randn(n, w, device=dev), torch.randint(0, 10, (n,), device=dev)
    groups = (torch.arange(n) % k).to(dev)
    rec = SpectralRecorder(model, stats=("grad",))

    def plain() -> None:
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()

    def recorded() -> None:
        model.zero_grad()
        with rec.record(groups=groups):
            F.cross_entropy(model(x), y).backward()

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def peak_of(fn) -> float:
        """Peak memory of one call: CUDA's allocator peak, or the resident high-water mark (VmHWM,
        reset through /proc/self/clear_refs)."""
        sync()
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        else:
            Path("/proc/self/clear_refs").write_text("5")
        fn()
        sync()
        if dev.type == "cuda":
            return float(torch.cuda.max_memory_allocated())
        status = Path("/proc/self/status").read_text().splitlines()
        return 1024.0 * float(next(line.split()[1] for line in status if line.startswith("VmHWM")))

    plain()
    plain()
    peaks = {"plain": peak_of(plain), "first": peak_of(recorded), "steady": peak_of(recorded)}
    times: dict[str, list[float]] = {"plain": [], "recorded": []}
    for _ in range(rounds):  # interleaved: load drifts hit both alike
        for label, fn in (("plain", plain), ("recorded", recorded)):
            t0 = time.perf_counter()
            fn()
            sync()
            times[label].append(time.perf_counter() - t0)
    plain_s = statistics.median(times["plain"])
    return {**peaks, "ratio": statistics.median(times["recorded"]) / plain_s, "plain_s": plain_s}


def measure(src: Path, case: dict[str, int], args: argparse.Namespace) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, __file__, "--worker", json.dumps(case), args.device, str(args.rounds)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--worker":
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
        case, device, rounds = json.loads(sys.argv[2]), sys.argv[3], int(sys.argv[4])
        print(json.dumps(worker(case, device, rounds)))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, required=True, help="src/ directory of the code before the change")
    ap.add_argument("--baseline-label", default="", help="what the baseline is, e.g. 'main at 795fb9d'")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    rows = []
    for name, case in CASES[args.device].items():
        row: dict[str, object] = {"case": name, **case}
        for label, src in (("before", args.baseline), ("after", HERE_SRC)):
            m = measure(src, case, args)
            row[f"{label}_extra_MiB"] = (m["steady"] - m["plain"]) / 2**20
            row[f"{label}_first_extra_MiB"] = (m["first"] - m["plain"]) / 2**20
            row[f"{label}_ratio"] = m["ratio"]
            row[f"{label}_plain_ms"] = 1e3 * m["plain_s"]
            print(name, label, json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    result = {
        "machine": _machine(args.device, args.threads),
        "device": args.device,
        "baseline": args.baseline_label or str(args.baseline),
        "rows": rows,
    }
    stem = "recorder_memory" + ("_cuda" if args.device == "cuda" else "")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(to_markdown(result))
    print(to_markdown(result))
    return 0


def _machine(device: str, threads: int) -> dict[str, object]:
    import platform

    import torch

    cpu = platform.processor()
    with contextlib.suppress(OSError, StopIteration):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    info: dict[str, object] = {
        "cpu": cpu,
        "torch": torch.__version__,
        "threads": threads,
        "python": platform.python_version(),
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def to_markdown(result: dict) -> str:
    m = result["machine"]
    what = "CUDA max_memory_allocated" if result["device"] == "cuda" else "peak resident memory, VmHWM"
    lines = [
        f"Machine: {m.get('gpu', m['cpu'])}, torch {m['torch']}, {m['threads']} CPU threads. Extra memory of one "
        f"recorded step (stats=('grad',), groups) over a plain step ({what}); time: recorded/plain ratio of medians, interleaved.",
        f"Before: {result.get('baseline', '?')}; after: this tree.",
        "",
        "| case | W | N | K | before: extra MiB | before: time ratio (plain ms) | after: extra MiB | "
        "after: first (probe) step extra MiB | after: time ratio (plain ms) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['case']} | {r['W']} | {r['N']} | {r['K']} | {r['before_extra_MiB']:.0f} | {r['before_ratio']:.1f} "
        f"({r['before_plain_ms']:.0f}) | {r['after_extra_MiB']:.0f} | {r['after_first_extra_MiB']:.0f} | "
        f"{r['after_ratio']:.1f} ({r['after_plain_ms']:.0f}) |"
        for r in result["rows"]
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
