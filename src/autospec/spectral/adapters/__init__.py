"""Registry of layer adapters (one file per layer kind) and of generic-path owners.

Adding a layer kind is adding one file here that defines a :class:`LayerAdapter` subclass
decorated with :func:`register`, plus its import at the bottom of this file.
"""

from __future__ import annotations

from torch import nn

from .base import LayerAdapter

_ADAPTERS: dict[type[nn.Module], LayerAdapter] = {}


def register(cls: type[LayerAdapter]) -> type[LayerAdapter]:
    """Class decorator: make ``cls`` the adapter for its ``module_types``."""
    inst = cls()
    for t in cls.module_types:
        _ADAPTERS[t] = inst
    return cls


def adapter_for(module: nn.Module) -> LayerAdapter | None:
    """The adapter for ``module`` (nearest registered base class), or None."""
    for t in type(module).__mro__:
        a = _ADAPTERS.get(t)
        if a is not None:
            return a if a.applies(module) else None
    return None


def registered_types() -> tuple[type[nn.Module], ...]:
    return tuple(_ADAPTERS)


# Layer kinds. Import order does not matter; each module registers itself.
from . import conv, linear  # noqa: E402,F401
from .generic import batch_dims, claims_subtree  # noqa: E402,F401
