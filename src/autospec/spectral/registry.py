"""The spectral core's extension points, in one place (modelled on Opacus' ``register_grad_sampler``).

Four registries map a module type to what the recorder needs to know about it; each lookup walks
the module's MRO, so a subclass inherits its base class's entry unless it registers its own:

* :data:`ADAPTERS` — a :class:`~autospec.spectral.adapters.base.LayerAdapter` that writes the
  layer's weight gradient as G = AᵀΔ (the fast route with σ(A) and σ(Δ)). Register with the class
  decorator :func:`register_adapter`.
* :data:`SAMPLE_AXES` — where each output tensor of a module keeps the sample axis (the generic
  route masks output adjoints by group along it). Register a function with :func:`register_sample_axes`.
* :data:`SUBTREE_OWNERS` — modules whose whole subtree takes the generic route (they hold
  ``nn.Linear`` submodules they never call, or hide their matrices in fused kernels). Register
  with :func:`register_subtree_owner`.
* :data:`REFUSALS` — a function returning why a module's weights cannot be recorded (e.g. sparse
  gradients), or None. Register with :func:`register_refusal`.

The built-in entries live in :mod:`autospec.spectral.adapters`; importing that package registers
them. A user adds a layer kind the same way, from their own code::

    from autospec.spectral.registry import register_adapter
    from autospec.spectral.adapters.base import LayerAdapter

    @register_adapter(MyLayer)
    class MyLayerAdapter(LayerAdapter):
        ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

if TYPE_CHECKING:
    from .adapters.base import LayerAdapter

T = TypeVar("T")
ModuleTypes = type[nn.Module] | Sequence[type[nn.Module]]


@dataclass(frozen=True)
class SampleLayout:
    """Where one tensor keeps its samples.

    ``axis`` indexes positions along which samples are laid out. ``ids`` (optional, int64, one
    entry per position along ``axis``) names the sample each position belongs to — for a
    ``PackedSequence``'s ``data`` every row is one token of one sample; None means position i is
    sample i.
    """

    axis: int
    ids: torch.Tensor | None = None


SampleAxisRule = Callable[[nn.Module, Any, int], Sequence[SampleLayout | None]]
RefusalRule = Callable[[nn.Module], str | None]


class Registry(Generic[T]):
    """Module type → entry, looked up along the module's MRO (nearest registered base wins)."""

    def __init__(self, what: str):
        self.what = what
        self._by_type: dict[type[nn.Module], T] = {}

    def add(self, types: ModuleTypes, entry: T) -> None:
        for t in _as_types(types):
            self._by_type[t] = entry
        _VERSION[0] += 1

    def lookup(self, module: nn.Module) -> T | None:
        for t in type(module).__mro__:
            entry = self._by_type.get(t)
            if entry is not None:
                return entry
        return None

    def types(self) -> tuple[type[nn.Module], ...]:
        return tuple(self._by_type)


def _as_types(types: ModuleTypes) -> tuple[type[nn.Module], ...]:
    out = (types,) if isinstance(types, type) else tuple(types)
    for t in out:
        if not (isinstance(t, type) and issubclass(t, nn.Module)):
            raise TypeError(f"registries map nn.Module subclasses, got {t!r}")
    return out


_VERSION = [0]


def registry_version() -> int:
    """Bumped by every registration (a recorder's cached plan is resolved again after one)."""
    return _VERSION[0]


ADAPTERS: Registry[LayerAdapter] = Registry("layer adapter")
SAMPLE_AXES: Registry[SampleAxisRule] = Registry("sample-axis rule")
SUBTREE_OWNERS: Registry[str] = Registry("subtree owner")
REFUSALS: Registry[RefusalRule] = Registry("refusal rule")

A = TypeVar("A", bound="type[LayerAdapter]")
F = TypeVar("F", bound=Callable[..., Any])


def register_adapter(types: ModuleTypes) -> Callable[[A], A]:
    """Class decorator: make an instance of the decorated adapter handle ``types``."""

    def deco(cls: A) -> A:
        ADAPTERS.add(types, cls())
        return cls

    return deco


def register_sample_axes(types: ModuleTypes) -> Callable[[F], F]:
    """Decorator for ``rule(module, output, default_axis) -> [SampleLayout | None per output leaf]``.

    The list is aligned with ``torch.utils._pytree.tree_flatten(output)[0]``; None marks a leaf
    without a sample axis (e.g. a ``PackedSequence``'s ``batch_sizes``).
    """

    def deco(fn: F) -> F:
        SAMPLE_AXES.add(types, fn)
        return fn

    return deco


def register_subtree_owner(types: ModuleTypes, reason: str) -> None:
    """Route every weight in the subtree of ``types`` through the generic path, for ``reason``."""
    SUBTREE_OWNERS.add(types, reason)


def register_refusal(types: ModuleTypes) -> Callable[[F], F]:
    """Decorator for ``rule(module) -> reason | None``: a reason refuses the module's weights."""

    def deco(fn: F) -> F:
        REFUSALS.add(types, fn)
        return fn

    return deco


def adapter_for(module: nn.Module) -> LayerAdapter | None:
    """The adapter for ``module`` when it can express this configuration, else None."""
    a = ADAPTERS.lookup(module)
    return a if a is not None and a.applies(module) else None


def refusal_for(module: nn.Module) -> str | None:
    rule = REFUSALS.lookup(module)
    return None if rule is None else rule(module)


def subtree_owner_reason(module: nn.Module) -> str | None:
    return SUBTREE_OWNERS.lookup(module)


def sample_layouts(module: nn.Module, output: Any, default_axis: int) -> list[SampleLayout | None]:
    """Sample layout of each leaf of ``output`` (default: ``default_axis`` for every tensor)."""
    rule = SAMPLE_AXES.lookup(module)
    if rule is not None:
        return list(rule(module, output, default_axis))
    leaves = tree_flatten(output)[0]
    return [SampleLayout(default_axis) if isinstance(x, torch.Tensor) else None for x in leaves]


_ENTRIES: dict[type[nn.Module], tuple[int, LayerAdapter | None, RefusalRule | None]] = {}


def route_state(module: nn.Module) -> tuple[bool, str | None] | None:
    """What of a module's own configuration decides its weights' route (adapter applies, refusal);
    None for a module type with neither (looked up once per type and registry version)."""
    t = type(module)
    entry = _ENTRIES.get(t)
    if entry is None or entry[0] != _VERSION[0]:
        entry = (_VERSION[0], ADAPTERS.lookup(module), REFUSALS.lookup(module))
        _ENTRIES[t] = entry
    _, adapter, refusal = entry
    if adapter is None and refusal is None:
        return None
    return (adapter is not None and adapter.applies(module)), (None if refusal is None else refusal(module))
