"""Refuse a run that cannot fit in memory before allocating it.

:func:`estimate` builds the model on torch's ``meta`` device (shapes only, no storage) and runs
one forward pass of a batch there, with hooks that note every module's output size and every
recorded weight's rows of A and Δ. The estimate is a LOWER bound of what the run must hold at
once: the parameters with their gradients and Adam's two moments (4 × 4 bytes per parameter),
the training data on the device, every module output of one batch (autograd keeps them for the
backward pass) and, on recorded steps, the recorders' per-group accumulators of one weight (the
largest): float64, σ(G) needs min(n_out·n_in, rows·(n_in + n_out)) values per group, σ(A) and
σ(Δ) min(rows, width)·width. A run refused here would certainly fail; a run that passes can still
run out of memory (temporaries, the allocator's slack, other processes).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import InputError
from ..models import build_model
from .config import RunSettings

F32, F64 = 4, 8
_RECORDED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes the run needs at least, by what they are for (and the config field that sets them)."""

    parameters: int  # model.hidden
    activations: int  # training.batch_size (with the model's widths)
    recorder: int  # training.batch_size (rows of the recorded batch)
    subjects: int  # recording.subjects (one group per sample)
    data: int

    @property
    def total(self) -> int:
        return self.parameters + self.activations + self.recorder + self.subjects + self.data

    def culprit(self) -> str:
        """The config field behind the largest term."""
        terms = {
            "model.hidden": self.parameters,
            "training.batch_size": self.activations + self.recorder,
            "recording.subjects": self.subjects,
        }
        return max(terms, key=lambda k: terms[k])


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} PiB"


def available_bytes(device: torch.device) -> int | None:
    """Free memory of ``device``: CUDA's free bytes; on CPU MemAvailable, capped by a cgroup limit."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        free = int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            free = min(free, int(limit) - used)
    except (OSError, ValueError):
        pass
    return free


def _weight_rows(model: nn.Module, x: torch.Tensor) -> tuple[int, dict[str, tuple[int, int, int]]]:
    """(bytes of every module output, {weight: (n_out, n_in, rows per sample)}) for one forward."""
    out_bytes = [0]
    rows: dict[str, list[int]] = {}

    def note(name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        def hook(mod: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if isinstance(output, torch.Tensor):
                out_bytes[0] += output.numel() * output.element_size()
            if isinstance(mod, _RECORDED) and isinstance(output, torch.Tensor):
                n_out, n_in = mod.weight.shape[0], mod.weight[0].numel()
                per_sample = output[0].numel() // n_out if output.shape[0] else 0
                entry = rows.setdefault(name, [n_out, n_in, 0])
                entry[2] += per_sample

        return hook

    handles = [m.register_forward_hook(note(n)) for n, m in model.named_modules() if not list(m.children())]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return out_bytes[0], {k: (v[0], v[1], v[2]) for k, v in rows.items()}


def _factor_bytes(n_out: int, n_in: int, rows: int, stats: Collection[str]) -> int:
    """float64 bytes one group's accumulators of one weight hold at the end of a recorded step."""
    total = 0
    if "grad" in stats:
        total += min(n_out * n_in, rows * (n_in + n_out)) * F64
    if "act" in stats:
        total += min(rows, n_in) * n_in * F64
    if "delta" in stats:
        total += min(rows, n_out) * n_out * F64
    return total


def estimate(
    settings: RunSettings, *, input_shape: tuple[int, ...], n_classes: int, n_train: int, n_data_elements: int
) -> MemoryEstimate:
    """The lower bound described in the module docstring, for a batch of the run's size."""
    m, rec = settings.model, settings.recording
    batch = min(settings.training.batch_size or n_train, n_train)
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        model = build_model(
            m.family, m.task, input_shape, n_classes, hidden=m.hidden, activation=m.activation, **m.options
        )
        params = sum(p.numel() for p in model.parameters())
        try:
            acts, weights = _weight_rows(model, torch.empty((batch, *input_shape)))
        except (NotImplementedError, RuntimeError):  # an op without a meta kernel: count parameters only
            acts, weights = 0, {}
    main = sub = 0
    for n_out, n_in, per_sample in weights.values():
        rows = batch * per_sample
        whole = _factor_bytes(n_out, n_in, rows, rec.stats)
        main = max(main, whole * (2 if rec.groups else 1))  # whole batch + groups (their rows add up to it)
        if rec.subjects:
            sub = max(sub, whole + batch * _factor_bytes(n_out, n_in, per_sample, rec.subject_stats))
    return MemoryEstimate(
        parameters=4 * F32 * params, activations=acts, recorder=main, subjects=sub, data=n_data_elements * F32
    )


def check_memory(
    settings: RunSettings,
    *,
    input_shape: tuple[int, ...],
    n_classes: int,
    n_train: int,
    n_data_elements: int,
    device: torch.device,
    where: str = "",
) -> MemoryEstimate | None:
    """Raise InputError (naming the field behind the largest term) when the run cannot fit."""
    try:
        est = estimate(
            settings, input_shape=input_shape, n_classes=n_classes, n_train=n_train, n_data_elements=n_data_elements
        )
    except (RuntimeError, OverflowError) as err:  # sizes beyond what a tensor can describe
        raise InputError(
            f"run config field model.hidden: {list(settings.model.hidden)} gives tensors too large "
            f"to describe ({str(err).splitlines()[0]})"
        ) from None
    free = available_bytes(device)
    if free is None or est.total <= free:
        return est
    parts = ", ".join(
        f"{k} {human(v)}"
        for k, v in (
            ("parameters+gradients+Adam", est.parameters),
            ("activations", est.activations),
            ("recorder", est.recorder),
            ("per-subject recorder", est.subjects),
            ("data", est.data),
        )
        if v
    )
    suffix = f" (in {where})" if where else ""
    raise InputError(
        f"run config field {est.culprit()}: the run needs at least "
        f"{human(est.total)} of {device.type} memory ({parts}), only {human(free)} is available{suffix}"
    )
