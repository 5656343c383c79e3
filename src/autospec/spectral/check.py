"""``autospec.check(model, example_inputs)``: which route each weight takes, and why (like Opacus'
``ModuleValidator``), plus — with example inputs — one trial step through the recorder's checks.

The trial step runs the model's forward on ``example_inputs`` and a backward of a per-sample
loss (½ Σ outputs²) inside a recorder with groups, so the probe step of :mod:`.verify` runs:
weights used outside the modules that own them and samples that interact in the forward are
reported. The model is left as it was: ``.grad``, buffers and the RNG state are restored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from .options import IncludeItem, validate_options
from .targets import Plan, resolve


@dataclass
class Route:
    key: str
    route: str  # "adapter", "generic", "refused" or "not recorded"
    modules: list[str]
    detail: str


@dataclass
class CheckReport:
    routes: list[Route] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    trial: bool = False  # True when a trial step ran on example inputs

    @property
    def ok(self) -> bool:
        return not self.problems and not any(r.route == "refused" for r in self.routes)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "key": [r.key for r in self.routes],
                "route": [r.route for r in self.routes],
                "modules": [", ".join(m or "(model)" for m in r.modules) for r in self.routes],
                "detail": [r.detail for r in self.routes],
            }
        )

    def __str__(self) -> str:
        width = max([len(r.key) for r in self.routes] + [3])
        lines = [f"{r.key:<{width}}  {r.route:<12}  {r.detail}" for r in self.routes]
        if self.trial:
            lines.append("trial step: " + ("passed" if not self.problems else "FAILED"))
        lines += [f"problem: {p}" for p in self.problems]
        return "\n".join(lines)


def _routes(plan: Plan, order: list[str]) -> list[Route]:
    by_key: dict[str, Route] = {}
    for a in plan.adapters:
        r = by_key.setdefault(a.key, Route(a.key, "adapter", [], ""))
        r.modules.append(a.name)
        r.detail = f"{type(a.adapter).__name__}: G = AᵀΔ (grad, act, delta)"
    for g in plan.generics:
        for key in g.keys:
            r = by_key.setdefault(key, Route(key, "generic", [], ""))
            r.modules.append(g.name)
            where = g.name or "the model"
            detail = f"replay of {where} ({type(g.module).__name__}): {g.why}; grad only"
            r.detail = detail if r.route == "generic" else f"{r.detail}; + {detail}"
            if r.route == "adapter":
                r.route = "adapter+generic"
    for s in plan.skipped:
        by_key.setdefault(s.key, Route(s.key, "refused" if s.refused else "not recorded", [s.module], s.reason))
    for r in by_key.values():
        if len(r.modules) > 1 and r.route != "refused":
            r.detail += f" — shared by {len(r.modules)} modules, contributions summed"
    pos = {k: i for i, k in enumerate(order)}
    return sorted(by_key.values(), key=lambda r: pos.get(r.key, len(pos)))


def check(
    model: nn.Module,
    example_inputs: Any = None,
    *,
    groups: Any = None,
    include: IncludeItem | Iterable[IncludeItem] | None = None,
    batch_dim: int | Mapping[str, int] = 0,
) -> CheckReport:
    """List each weight's route (adapter / generic / refused) and why; with ``example_inputs``
    (a tensor or a tuple of positional arguments) also run one trial step through the recorder's
    checks, with ``groups`` (default: samples alternately in groups 0 and 1)."""
    options = validate_options(
        stats=("grad",), include=include, every=1, top_k=None, batch_dim=batch_dim,
        assume_independent=False, subspaces=None,
    )  # fmt: skip
    report = CheckReport(_routes(resolve(model, options), [k for k, _ in model.named_parameters()]))
    if example_inputs is None:
        return report
    report.trial = True
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    try:
        _trial(model, args, groups=groups, include=include, batch_dim=batch_dim, axis=options.axes.for_module(""))
    except (ValueError, RuntimeError, TypeError) as e:
        report.problems.append(str(e))
    return report


def _trial(model: nn.Module, args: tuple[Any, ...], *, groups: Any, include: Any, batch_dim: Any, axis: int) -> None:
    from .recorder import SpectralRecorder

    if groups is None:
        first = next((a for a in tree_flatten(args)[0] if isinstance(a, torch.Tensor) and a.dim() > 0), None)
        if first is None:
            raise ValueError("example_inputs hold no tensor with a sample axis")
        groups = torch.arange(first.shape[axis % first.dim()]) % 2
    params = list(model.parameters())
    grads = [None if p.grad is None else p.grad.clone() for p in params]
    buffers = list(model.buffers())
    saved = [b.clone() for b in buffers]
    rec = SpectralRecorder(model, stats=("grad",), include=include, batch_dim=batch_dim)
    try:
        with torch.random.fork_rng(devices=[]), rec.record(groups=groups):
            out = model(*args)
            leaves = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor) and t.requires_grad]
            if not leaves:
                raise ValueError("the model's output does not require grad: nothing to record")
            loss = sum(0.5 * t.float().pow(2).sum() for t in leaves)
            assert isinstance(loss, torch.Tensor)
            loss.backward()  # type: ignore[no-untyped-call]
    finally:
        with torch.no_grad():
            for b, old in zip(buffers, saved):
                b.copy_(old)
        for p, g in zip(params, grads):
            p.grad = g
