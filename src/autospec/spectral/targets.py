"""Which weights a recorder watches, and by which route: resolved afresh at every ``record()``.

Keys are exactly the (deduplicated) names of ``model.named_parameters()``. A parameter shared by
several modules (tied embedding/decoder weights) is one key with several *uses*; the recorder sums
every use's contribution before taking σ. Routes:

* adapter — the module's registered :class:`~autospec.spectral.adapters.base.LayerAdapter`
  writes the gradient as AᵀΔ (σ of A and Δ available too);
* generic — the module owning the parameter is replayed after the backward (grad only);
* refused — a registered refusal rule says why (e.g. sparse gradients); the recorder raises.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from torch import nn

from . import adapters as _builtin_entries  # noqa: F401  (registers the built-in layer kinds)
from .adapters.base import LayerAdapter
from .options import IncludeItem, RecorderOptions
from .registry import ADAPTERS, adapter_for, refusal_for, subtree_owner_reason


@dataclass
class Slot:
    """One recorded parameter."""

    key: str
    param: nn.Parameter
    shape: tuple[int, int]  # (n_out, n_in): the weight reshaped to (shape[0], -1)


@dataclass
class AdapterUse:
    name: str  # module name ("" for the model itself)
    module: nn.Module
    adapter: LayerAdapter
    key: str
    axis: int  # sample axis of the module's input and output


@dataclass
class GenericUse:
    name: str
    module: nn.Module
    keys: list[str]
    params: list[nn.Parameter]
    axis: int  # sample axis of its outputs unless a registered rule says otherwise
    why: str  # why this module takes the generic route (for autospec.check)


@dataclass
class Skipped:
    key: str
    module: str
    reason: str
    refused: bool = False  # True: the recorder raises; False: silently not recorded (e.g. a bias)


@dataclass
class Plan:
    slots: dict[str, Slot] = field(default_factory=dict)  # in named_parameters() order
    adapters: list[AdapterUse] = field(default_factory=list)
    generics: list[GenericUse] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def refused(self) -> list[Skipped]:
        return [s for s in self.skipped if s.refused]

    def uses_of(self, key: str) -> list[str]:
        return [a.name for a in self.adapters if a.key == key] + [g.name for g in self.generics if key in g.keys]

    def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """(uses, adapter uses) per key — computed once per plan (plans are cached)."""
        if not hasattr(self, "_counts"):
            uses = {k: len(self.uses_of(k)) for k in self.slots}
            adapter = {k: sum(1 for a in self.adapters if a.key == k) for k in self.slots}
            self._counts = (uses, adapter)
        return self._counts


def _wanted(key: str, mname: str, module: nn.Module, include: tuple[IncludeItem, ...] | None) -> bool:
    return include is None or any(_matches(item, key, mname, module) for item in include)


def _matches(item: IncludeItem, key: str, mname: str, module: nn.Module) -> bool:
    if isinstance(item, type):
        return isinstance(module, item)
    if key == item or fnmatch.fnmatchcase(key, item):
        return True
    return mname == item or mname.startswith(item + ".") or (item != "" and fnmatch.fnmatchcase(mname, item))


class _Found(NamedTuple):
    mname: str  # the module using the parameter
    module: nn.Module
    local: str  # the parameter's name in that module
    owner: str | None  # name of the subtree owner it lies in, if any


def _uses(model: nn.Module) -> Iterator[tuple[str, nn.Module, str, nn.Parameter, str | None]]:
    """(module name, module, local name, parameter, subtree owner name or None) for every use."""
    owners: list[str] = []
    for mname, module in model.named_modules():
        if any(mname == o or mname.startswith(o + ".") or o == "" for o in owners):
            continue
        if subtree_owner_reason(module) is not None:
            owners.append(mname)
            for local, p in module.named_parameters():
                yield mname, module, local, p, mname
            continue
        for local, p in module.named_parameters(recurse=False):
            yield mname, module, local, p, None


def resolve(model: nn.Module, options: RecorderOptions) -> Plan:
    """The recording plan for the model as it is now (requires_grad, modules, include)."""
    uses: dict[int, list[_Found]] = {}
    for mname, module, local, p, owner in _uses(model):
        uses.setdefault(id(p), []).append(_Found(mname, module, local, owner))
    plan = Plan()
    for key, p in model.named_parameters():
        mine = uses.get(id(p), [])
        where = mine[0][0] if mine else ""
        if p.dim() < 2:
            plan.skipped.append(Skipped(key, where, "not a matrix (1-D): not recorded"))
        elif not p.requires_grad:
            plan.skipped.append(Skipped(key, where, "requires_grad is False: not recorded"))
        elif not any(_wanted(key, m, mod, options.include) for m, mod, _, _ in mine):
            plan.skipped.append(Skipped(key, where, "not matched by include"))
        else:
            for use in mine:
                _add_use(plan, key, p, use, options)
    _drop_refused(plan)
    _drop_uses_inside_generic_owners(plan)
    return plan


def _drop_refused(plan: Plan) -> None:
    """A parameter with one refused use is refused as a whole (a partial sum would be wrong)."""
    bad = {s.key for s in plan.refused}
    for key in bad:
        plan.slots.pop(key, None)
    plan.adapters = [a for a in plan.adapters if a.key not in bad]
    for g in plan.generics:
        keep = [i for i, k in enumerate(g.keys) if k not in bad]
        g.keys, g.params = [g.keys[i] for i in keep], [g.params[i] for i in keep]
    plan.generics = [g for g in plan.generics if g.keys]


def _add_use(plan: Plan, key: str, p: nn.Parameter, use: _Found, o: RecorderOptions) -> None:
    mname, module, local, owner = use
    reason = refusal_for(module)
    if reason is not None:
        plan.skipped.append(Skipped(key, mname, reason, refused=True))
        return
    plan.slots.setdefault(key, Slot(key, p, (int(p.shape[0]), int(p[0].numel()))))
    axis = o.axes.for_module(mname)
    adapter = adapter_for(module) if owner is None else None
    if adapter is not None and local == adapter.weight_name:
        if adapter.batch_first_only and axis != 0:
            raise ValueError(
                f"batch_dim gives module {mname!r} ({type(module).__name__}) sample axis {axis}, "
                "but it takes samples on dim 0"
            )
        plan.adapters.append(AdapterUse(mname, module, adapter, key, axis))
        return
    why = _generic_reason(module, local, owner)
    for g in plan.generics:
        if g.module is module:
            if not any(q is p for q in g.params):
                g.keys.append(key)
                g.params.append(p)
            return
    plan.generics.append(GenericUse(mname, module, [key], [p], axis, why))


def _generic_reason(module: nn.Module, local: str, owner: str | None) -> str:
    if owner is not None:
        return f"inside {owner or 'the model'}, whose {subtree_owner_reason(module) or 'subtree it owns'}"
    registered = ADAPTERS.lookup(module)
    if registered is not None and not registered.applies(module):
        return registered.why_not(module)
    if registered is not None:
        return f"{local!r} is not the adapter's weight"
    return f"no adapter registered for {type(module).__name__}: exact replay of its forward"


def _drop_uses_inside_generic_owners(plan: Plan) -> None:
    """A generic owner's replay already covers uses of its parameters by its own submodules."""

    def inside(inner: str, outer: str) -> bool:
        return inner != outer and (outer == "" or inner.startswith(outer + "."))

    for g in plan.generics:
        plan.adapters = [a for a in plan.adapters if not (a.key in g.keys and inside(a.name, g.name))]
        for h in plan.generics:
            if h is not g and inside(h.name, g.name):
                drop = [i for i, k in enumerate(h.keys) if k in g.keys]
                h.keys = [k for i, k in enumerate(h.keys) if i not in drop]
                h.params = [p for i, p in enumerate(h.params) if i not in drop]
    plan.generics = [g for g in plan.generics if g.keys]


def check_include(model: nn.Module, include: tuple[IncludeItem, ...] | None) -> None:
    """Every include item must match some ≥2-D parameter (trainable or not) of the model."""
    if include is None:
        return
    keys = {id(p): name for name, p in model.named_parameters()}
    uses = [(keys[id(p)], m, mod) for m, mod, _, p, _ in _uses(model) if p.dim() >= 2]
    for item in include:
        if not any(_matches(item, k, m, mod) for k, m, mod in uses):
            what = item.__name__ if isinstance(item, type) else repr(item)
            raise ValueError(
                f"include item {what} matches no weight matrix of the model "
                f"(weights: {', '.join(sorted({k for k, _, _ in uses})) or 'none'})"
            )
