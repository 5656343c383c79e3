"""The element-wise activations shared by :mod:`autospec.nn` and :mod:`autospec.models`.

Functional and never in-place: in-place activations break full backward hooks.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

ActivationFn = Callable[[Tensor], Tensor]


def identity(x: Tensor) -> Tensor:
    """The ``linear`` activation."""
    return x


def gelu(x: Tensor) -> Tensor:
    """Exact (erf) GELU, as ``torch.nn.GELU()``."""
    return F.gelu(x)


ACTIVATIONS: dict[str, ActivationFn] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "linear": identity,
    "gelu": gelu,
}


def activation_function(name: str, what: str = "activation") -> ActivationFn:
    """The element-wise function called ``name``; ValueError naming the allowed ones."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        allowed = ", ".join(ACTIVATIONS)
        raise ValueError(f"{what} {name!r} is not one of: {allowed}") from None
