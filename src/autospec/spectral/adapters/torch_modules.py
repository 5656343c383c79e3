"""Torch modules on the generic route: where their outputs keep samples, which own their subtree,
and which the recorder refuses.

The generic route needs, for each output tensor of a module call, the axis that indexes samples
(to mask the output adjoint by group). Torch modules that hold ``nn.Linear`` submodules they never
call (``nn.MultiheadAttention`` uses ``out_proj.weight`` functionally) or that hide their matrices
in fused kernels (``nn.RNN/LSTM/GRU``) claim their whole subtree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence
from torch.utils._pytree import tree_flatten

from ..registry import SampleLayout, register_refusal, register_sample_axes, register_subtree_owner

register_subtree_owner(nn.RNNBase, "fused recurrent kernel: its matrices are not called as nn.Linear")
register_subtree_owner(nn.MultiheadAttention, "uses out_proj.weight functionally, never calls out_proj")


def packed_sample_ids(packed: PackedSequence) -> torch.Tensor:
    """Sample index of each row of ``packed.data`` (rows are time-major over the sorted batch)."""
    sizes = packed.batch_sizes.tolist()
    order = packed.sorted_indices
    sorted_pos = torch.arange(sizes[0]) if order is None else order.cpu()
    return torch.cat([sorted_pos[:b] for b in sizes]).to(packed.data.device)


@register_sample_axes(nn.RNNBase)
def _rnn(module: nn.Module, output: Any, default_axis: int) -> Sequence[SampleLayout | None]:
    # output: (N, T, H) if batch_first else (T, N, H), or a PackedSequence; h_n, c_n: (layers·dirs, N, H)
    seq, state = output
    if isinstance(seq, PackedSequence):
        head: list[SampleLayout | None] = [SampleLayout(0, packed_sample_ids(seq)), None, None, None]
    else:
        head = [SampleLayout(0 if getattr(module, "batch_first", False) else 1)]
    n_state = len(tree_flatten(state)[0])
    return head + [SampleLayout(1)] * n_state


@register_sample_axes(nn.MultiheadAttention)
def _mha(module: nn.Module, output: Any, default_axis: int) -> Sequence[SampleLayout | None]:
    # attention output follows batch_first; averaged weights are always (N, L, S)
    first = 0 if getattr(module, "batch_first", False) else 1
    _, weights = output
    return [SampleLayout(first)] + ([] if weights is None else [SampleLayout(0)])


@register_refusal((nn.Embedding, nn.EmbeddingBag))
def _sparse_embedding(module: nn.Module) -> str | None:
    if getattr(module, "sparse", False):
        return (
            "it produces sparse gradients (sparse=True): their spectra are not computed; "
            "use sparse=False or leave it out with include="
        )
    return None


def _first_axis(module: nn.Module) -> int:
    attn = getattr(module, "self_attn", None)
    return 0 if getattr(attn, "batch_first", False) else 1


@register_sample_axes(nn.TransformerEncoderLayer)
def _encoder_layer(module: nn.Module, output: Any, default_axis: int) -> Sequence[SampleLayout | None]:
    return [SampleLayout(_first_axis(module))]


@register_sample_axes(nn.TransformerEncoder)
def _encoder(module: nn.Module, output: Any, default_axis: int) -> Sequence[SampleLayout | None]:
    layers = getattr(module, "layers", [])
    return [SampleLayout(_first_axis(layers[0]) if len(layers) else default_axis)]
