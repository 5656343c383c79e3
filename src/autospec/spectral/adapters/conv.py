"""nn.Conv1d/2d/3d: A is the unfolded input (im2col), one row per sample and output position.

The weight ``(out, in, *k)`` flattened to ``(out, in·∏k)`` is ``Σ Δᵀ A`` with A's columns in the
same (channel, kernel offset) order. Convolutions with ``groups > 1`` or a padding mode other than
zeros are left to the generic path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import register
from .base import LayerAdapter


def unfold_nd(module: nn.modules.conv._ConvNd, x: torch.Tensor) -> torch.Tensor:
    """im2col for any spatial rank: ``(n, C, *S)`` → ``(n, L, C·∏k)``."""
    d = len(module.kernel_size)
    pad = module._reversed_padding_repeated_twice
    if any(pad):
        x = F.pad(x, pad)
    for i, (k, s, dil) in enumerate(zip(module.kernel_size, module.stride, module.dilation)):
        span = dil * (k - 1) + 1
        x = x.unfold(2 + i, span, s)  # window appended as the last dim
        if dil > 1:
            x = x[..., ::dil]
    # x: (n, C, o_1..o_d, k_1..k_d) → (n, o_1..o_d, C, k_1..k_d)
    n, c = x.shape[:2]
    perm = [0, *range(2, 2 + d), 1, *range(2 + d, 2 + 2 * d)]
    x = x.permute(perm)
    n_pos = 1
    for o in x.shape[1 : 1 + d]:
        n_pos *= o
    return x.reshape(n, n_pos, -1)


@register
class ConvAdapter(LayerAdapter):
    module_types = (nn.Conv1d, nn.Conv2d, nn.Conv3d)

    def applies(self, module: nn.Module) -> bool:
        return module.groups == 1 and module.padding_mode == "zeros"

    def input_rows(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return unfold_nd(module, x)

    def output_rows(self, module: nn.Module, grad: torch.Tensor) -> torch.Tensor:
        return grad.flatten(2).transpose(1, 2)

    def group_grads(self, module, x, grad, blocks):
        """Each group's weight gradient by torch's own convolution backward on its samples only.

        Selecting the group's samples (a view when they are contiguous, else a transient copy)
        costs one weight-gradient convolution over the batch in all; zeroing the other samples'
        adjoints instead cost one full-batch convolution per group.
        """
        d = len(module.kernel_size)
        if isinstance(module.padding, str):  # 'same' may pad asymmetrically: pad explicitly
            pad = module._reversed_padding_repeated_twice
            x = F.pad(x, pad) if any(pad) else x
            padding = [0] * d
        else:
            padding = list(module.padding)
        out = []
        for idx in blocks:
            xs, gs = (x, grad) if idx is None else (_take(x, idx), _take(grad, idx))
            gw = torch.ops.aten.convolution_backward(
                gs,
                xs,
                module.weight,
                None,
                module.stride,
                padding,
                module.dilation,
                False,
                [0] * d,
                1,
                [False, True, False],
            )[1]
            out.append(gw.reshape(gw.shape[0], -1))
        return torch.stack(out)


def _take(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``t[idx]`` along the sample axis; a view when ``idx`` is an ascending contiguous range."""
    n = idx.numel()
    if n == 0:
        return t[:0]
    first = int(idx[0])
    if int(idx[-1]) - first + 1 == n and (n == 1 or bool((idx[1:] - idx[:-1] == 1).all())):
        return t.narrow(0, first, n)
    return t.index_select(0, idx)
