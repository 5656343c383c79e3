"""nn.Conv1d/2d/3d: A is the unfolded input (im2col), one row per sample and output position.

The weight ``(out, in, *k)`` flattened to ``(out, in·∏k)`` is ``Σ Δᵀ A`` with A's columns in the
same (channel, kernel offset) order. Convolutions with ``groups > 1`` or a padding mode other than
zeros are left to the generic path. Samples must be on dim 0 (torch's own layout for convolutions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_adapter
from .base import LayerAdapter

_HALF = (torch.float16, torch.bfloat16)


def unfold_nd(module: Any, x: torch.Tensor) -> torch.Tensor:
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
    n = x.shape[0]
    perm = [0, *range(2, 2 + d), 1, *range(2 + d, 2 + 2 * d)]
    x = x.permute(perm)
    n_pos = 1
    for o in x.shape[1 : 1 + d]:
        n_pos *= o
    return x.reshape(n, n_pos, -1)


@register_adapter((nn.Conv1d, nn.Conv2d, nn.Conv3d))
class ConvAdapter(LayerAdapter):
    batch_first_only = True

    def applies(self, module: nn.Module) -> bool:
        return bool(getattr(module, "groups", 1) == 1 and getattr(module, "padding_mode", "zeros") == "zeros")

    def why_not(self, module: nn.Module) -> str:
        return (
            f"groups={getattr(module, 'groups', '?')}, padding_mode={getattr(module, 'padding_mode', '?')!r}: "
            "not a single AᵀΔ product (exact generic route instead)"
        )

    def input_problem(self, module: nn.Module, x: torch.Tensor) -> str | None:
        d = len(getattr(module, "kernel_size", ()))
        if x.dim() != d + 2:
            return f"its input has shape {tuple(x.shape)}: an unbatched convolution input has no sample axis"
        return None

    def input_rows(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return unfold_nd(module, x)

    def output_rows(self, module: nn.Module, grad: torch.Tensor) -> torch.Tensor:
        return grad.flatten(2).transpose(1, 2)

    def group_grads(
        self, module: nn.Module, x: torch.Tensor, grad: torch.Tensor, blocks: Sequence[torch.Tensor | None]
    ) -> torch.Tensor:
        """Each group's weight gradient by torch's own convolution backward on its samples only.

        Selecting the group's samples (a view when they are contiguous, else a transient copy)
        costs one weight-gradient convolution over the batch in all; zeroing the other samples'
        adjoints instead cost one full-batch convolution per group. Half-precision operands (under
        autocast) are multiplied in float32, so each product is exact for the operands the layer
        used, up to float32 accumulation.
        """
        conv: Any = module
        d = len(conv.kernel_size)
        work = torch.float32 if grad.dtype in _HALF else grad.dtype
        x, grad = x.to(work), grad.to(work)
        weight = conv.weight.detach().to(work)
        if isinstance(conv.padding, str):  # 'same' may pad asymmetrically: pad explicitly
            pad = conv._reversed_padding_repeated_twice
            x = F.pad(x, pad) if any(pad) else x
            padding = [0] * d
        else:
            padding = list(conv.padding)
        out = []
        ranges = getattr(blocks, "ranges", [None] * len(blocks))
        for idx, run in zip(blocks, ranges):
            xs, gs = (x, grad) if idx is None else (_take(x, idx, run), _take(grad, idx, run))
            gw = torch.ops.aten.convolution_backward(
                gs,
                xs,
                weight,
                None,
                conv.stride,
                padding,
                conv.dilation,
                False,
                [0] * d,
                1,
                [False, True, False],
            )[1]
            out.append(gw.reshape(gw.shape[0], -1))
        return torch.stack(out)


def _take(t: torch.Tensor, idx: torch.Tensor, run: tuple[int, int] | None = None) -> torch.Tensor:
    """``t[idx]`` along the sample axis; a view when the group's samples are one ascending run.

    ``run`` — ``(start, count)`` known on the host (:class:`~autospec.spectral.groups.Blocks`) —
    decides without reading ``idx``, so a device tensor is never synchronised on; without it
    (a caller's own blocks) the indices are inspected."""
    if run is not None:
        return t.narrow(0, run[0], run[1])
    n = idx.numel()
    if n == 0:
        return t[:0]
    if hasattr(idx, "ranges") or idx.device.type != "cpu":
        return t.index_select(0, idx)
    first = int(idx[0])
    if int(idx[-1]) - first + 1 == n and (n == 1 or bool((idx[1:] - idx[:-1] == 1).all())):
        return t.narrow(0, first, n)
    return t.index_select(0, idx)
