"""Modules handled by the generic path, and where their outputs keep the sample axis.

The generic path needs, for each output tensor of a module call, the axis that indexes samples
(to mask the output adjoint by group). Torch modules that hold Linear submodules they never call
(``nn.MultiheadAttention`` uses ``out_proj.weight`` functionally) or that hide their matrices in
fused kernels (``nn.RNN/LSTM/GRU``) claim their whole subtree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

_CLAIM_SUBTREE: tuple[type[nn.Module], ...] = (nn.MultiheadAttention, nn.RNNBase)
_BATCH_DIMS: dict[type[nn.Module], Callable[[nn.Module, Sequence[torch.Tensor]], list[int]]] = {}


def claims_subtree(module: nn.Module) -> bool:
    return isinstance(module, _CLAIM_SUBTREE)


def register_batch_dims(*types: type[nn.Module]):
    def deco(fn):
        for t in types:
            _BATCH_DIMS[t] = fn
        return fn

    return deco


@register_batch_dims(nn.RNNBase)
def _rnn(module: nn.RNNBase, outputs: Sequence[torch.Tensor]) -> list[int]:
    # output: (N, T, H) if batch_first else (T, N, H); h_n and c_n: (layers·dirs, N, H)
    first = 0 if module.batch_first else 1
    return [first] + [1] * (len(outputs) - 1)


@register_batch_dims(nn.MultiheadAttention)
def _mha(module: nn.MultiheadAttention, outputs: Sequence[torch.Tensor]) -> list[int]:
    # attention output follows batch_first; averaged weights are always (N, L, S)
    first = 0 if module.batch_first else 1
    return [first] + [0] * (len(outputs) - 1)


def batch_dims(module: nn.Module, outputs: Sequence[torch.Tensor]) -> list[int]:
    """Sample axis of each output tensor (dim 0 unless a rule says otherwise)."""
    for t in type(module).__mro__:
        fn = _BATCH_DIMS.get(t)
        if fn is not None:
            return fn(module, outputs)
    return [0] * len(outputs)
