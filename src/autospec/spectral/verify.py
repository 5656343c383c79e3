"""The probe step: checks that make a recorded step exact or refuse it, run once per configuration.

A recorder runs a :class:`Verifier` during its first recorded step and again whenever what the
checks depend on changes (a module's ``training`` flag, the recorded weights and their routes,
whether groups are given). It watches every module call of that step and

* checks that every use of every recorded weight lies in exactly one captured call
  (:mod:`.coverage`), at the end of each outermost call and, through ``Tensor.backward``, on the
  whole graph of the loss;
* with groups (unless ``assume_independent``), runs the model and loss probes of :mod:`.probe`.

A failed check raises before the backward runs, so ``.grad`` is untouched. Cost: a walk over the
graph, and with groups 2·⌈log₂ N⌉ partial backward passes plus as many Hessian-vector products
of the loss (measured in benchmarks/results/recorder.md).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from . import coverage, probe
from .groups import GroupIndex
from .options import SampleAxes
from .registry import SampleLayout, sample_layouts
from .replay import internal
from .targets import Plan


class CheckFailed(ValueError):
    """A recorded step cannot be exact; the message names the cause."""


def signature(modules: list[nn.Module], plan: Plan, grouped: bool) -> tuple[Any, ...]:
    """What the checks depend on: when it changes, the next recorded step is probed again
    (``modules``: the model's, in ``model.modules()`` order; ``plan`` is cached, so its identity
    stands for its uses)."""
    return [m.training for m in modules], id(plan), grouped


class Verifier:
    def __init__(self, model: nn.Module, plan: Plan, groups: GroupIndex, axes: SampleAxes, coupling: bool):
        self.model, self.plan, self.groups, self.axes = model, plan, groups, axes
        self.coupling = coupling and groups.grouped and (groups.n or 0) > 1
        self.params = {k: s.param for k, s in plan.slots.items()}
        self.keys_of: dict[int, set[str]] = {}
        for a in plan.adapters:
            self.keys_of.setdefault(id(a.module), set()).add(a.key)
        for g in plan.generics:
            self.keys_of.setdefault(id(g.module), set()).update(g.keys)
        self.names = {id(m): n for n, m in model.named_modules()}
        self.spans: list[coverage.Span] = []
        self.stack: list[int] = []
        self.inner: list[probe.Probed] = []
        self.outer: list[probe.Probed] = []
        self.calls: list[probe.Probed] = []  # every module call's output (to name a coupling's place)
        self.loss_seen = False
        self.inconclusive = False
        self.since = coverage.sequence_nr()  # graph nodes from here on belong to this step
        self._tap: _BackwardTap | None = None

    # ------------------------------------------------------------------ hooks
    def _pre(self, module: nn.Module, args: Any) -> None:
        if not internal():
            self.stack.append(coverage.sequence_nr())

    def _post(self, module: nn.Module, args: Any, output: Any) -> None:
        if internal() or not self.stack:
            return
        start = self.stack.pop()
        name = self.names.get(id(module), "?")
        keys = self.keys_of.get(id(module))
        outermost = not self.stack
        probed = self._probed(name, module, output, strict=bool(keys) or outermost)
        if self.coupling and not outermost:
            self.calls += probed
        if keys:
            self.spans.append(coverage.Span(name, frozenset(keys), start, coverage.sequence_nr()))
            self.inner += probed
        if outermost:  # an outermost call of the model has finished
            self.outer += probed
            coupled = self._probe(lambda: probe.model_probe(probed, self.inner, self.groups.n or 0, self.calls))
            self.inner, self.calls = [], []
            roots = [t.grad_fn for t in tree_flatten(output)[0] if isinstance(t, torch.Tensor) and t.requires_grad]
            self._check(roots, coupled)
            self._tap_backward()

    def _probe(self, run: Callable[[], str | None]) -> str | None:
        if not self.coupling:
            return None
        try:
            return run()
        except probe.Inconclusive:
            self.inconclusive = True
            return None

    def _probed(self, name: str, module: nn.Module, output: Any, strict: bool) -> list[probe.Probed]:
        leaves = tree_flatten(output)[0]
        layouts = sample_layouts(module, output, self.axes.for_module(name))
        label = f"'{name}'" if name else "the model"
        kind = type(module).__name__
        out = []
        for leaf, layout in zip(leaves, layouts):
            if not (isinstance(leaf, torch.Tensor) and leaf.requires_grad and leaf.is_floating_point()):
                continue
            if layout is not None and self._sized(leaf, layout):
                out.append(probe.Probed(name, leaf, layout, kind))
            elif self.coupling and strict:
                raise CheckFailed(
                    f"{label} ({type(module).__name__}) returns a tensor of shape {tuple(leaf.shape)} with no sample "
                    f"axis of {self.groups.n} samples, so sample independence cannot be checked; give its sample "
                    "axis with batch_dim=, or pass assume_independent=True if samples are known not to interact"
                )
        return out

    def _sized(self, t: torch.Tensor, layout: SampleLayout) -> bool:
        if t.dim() == 0:
            return False
        size = t.shape[layout.axis % t.dim()]
        return (size == self.groups.n) if layout.ids is None else (size == layout.ids.numel())

    def _check(self, roots: list[Any], coupled: str | None) -> None:
        problems = coverage.uncovered_uses(roots, self.params, self.spans, self.since)
        if problems:
            raise CheckFailed(coverage.describe(problems))
        if coupled:
            raise CheckFailed(f"per-group spectra refused: {coupled}")

    def on_backward(self, loss: torch.Tensor, gradient: torch.Tensor | None) -> None:
        if internal() or self.loss_seen:
            return
        self.loss_seen = True
        n = self.groups.n or 0
        coupled = self._probe(lambda: probe.loss_probe(loss, gradient, self.outer, n)) if loss.requires_grad else None
        self._check([loss.grad_fn], coupled)

    # ------------------------------------------------------------------ lifetime
    def _tap_backward(self) -> None:
        """From the end of the first outermost call on, see ``Tensor.backward`` (the loss): a
        torch-function mode costs Python dispatch per op, so it is not active during the forward."""
        if self._tap is None:
            self._tap = _BackwardTap(self.on_backward)
            self._tap.__enter__()  # type: ignore[no-untyped-call]

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        handles = []
        for m in self.model.modules():
            handles.append(m.register_forward_pre_hook(self._pre))
            handles.append(m.register_forward_hook(self._post))
        try:
            yield
        finally:
            for h in handles:
                h.remove()
            if self._tap is not None:
                self._tap.__exit__(None, None, None)  # type: ignore[no-untyped-call]
                self._tap = None
        if self.coupling and not self.loss_seen and not self.inconclusive:
            warnings.warn(
                "autospec: the loss was not checked for sample coupling (the backward did not go through "
                "loss.backward()); per-group spectra assume the loss is a sum or mean of per-sample terms",
                RuntimeWarning,
                stacklevel=4,
            )


class _BackwardTap(TorchFunctionMode):
    """Sees ``Tensor.backward`` calls (the loss and its graph) during the probe step only."""

    def __init__(self, on_backward: Callable[[torch.Tensor, torch.Tensor | None], None]):
        super().__init__()
        self.on_backward = on_backward

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if func is torch.Tensor.backward and args:
            self.on_backward(args[0], kwargs.get("gradient", args[1] if len(args) > 1 else None))
        return func(*args, **kwargs)
