"""nn.Linear: A is the input, Δ the adjoint of the output; extra middle dims are tokens."""

from __future__ import annotations

import torch
from torch import nn

from ..registry import register_adapter
from .base import LayerAdapter


@register_adapter(nn.Linear)
class LinearAdapter(LayerAdapter):
    def input_rows(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1, x.shape[-1])

    def output_rows(self, module: nn.Module, grad: torch.Tensor) -> torch.Tensor:
        return grad.reshape(grad.shape[0], -1, grad.shape[-1])
