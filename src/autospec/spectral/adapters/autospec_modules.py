"""autospec.nn modules: where their outputs keep samples (their Linears take the adapter route).

They follow torch's conventions: ``(output, h_n)`` / ``(output, (h_n, c_n))`` with output
``(N, T, H)`` when ``batch_first`` and states ``(layers, N, H)``; attention output follows
``batch_first`` and averaged weights are ``(N, L, S)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn
from torch.utils._pytree import tree_flatten

from ... import nn as autospec_nn
from ..registry import SampleLayout, register_sample_axes


def _axis(module: nn.Module) -> int:
    return 0 if getattr(module, "batch_first", True) else 1


@register_sample_axes((autospec_nn.ElmanRNN, autospec_nn.LSTM))
def _recurrent(module: nn.Module, output: Any, default_axis: int) -> Sequence[SampleLayout | None]:
    _, state = output
    return [SampleLayout(_axis(module))] + [SampleLayout(1)] * len(tree_flatten(state)[0])


@register_sample_axes(autospec_nn.MultiheadAttention)
def _attention(module: nn.Module, output: Any, default_axis: int) -> Sequence[SampleLayout | None]:
    _, weights = output
    return [SampleLayout(_axis(module))] + ([] if weights is None else [SampleLayout(0)])


@register_sample_axes(autospec_nn.TransformerEncoderLayer)
def _encoder_layer(module: nn.Module, output: Any, default_axis: int) -> Sequence[SampleLayout | None]:
    return [SampleLayout(_axis(module))]
