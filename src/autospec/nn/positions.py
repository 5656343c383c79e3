"""Learned absolute position embeddings (BERT style), added to a (N, T, d_model) sequence."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LearnedPositions(nn.Module):
    """Add a learned ``weight[:T]`` of shape (T, d_model) to every sample of an (N, T, d_model) input.

    ``weight`` (max_len, d_model) starts at N(0, 0.02²) as in BERT. It is a bare parameter, not a
    Linear weight: its gradient is the sum over samples of the adjoint, with no input factor.
    """

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        if max_len < 1 or d_model < 1:
            raise ValueError(f"LearnedPositions: max_len={max_len} and d_model={d_model} must be >= 1")
        self.max_len = max_len
        self.d_model = d_model
        self.weight = nn.Parameter(torch.empty(max_len, d_model))
        nn.init.normal_(self.weight, mean=0.0, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"LearnedPositions: expected input (batch, time, {self.d_model}), got shape {tuple(x.shape)}"
            )
        t = x.shape[1]
        if t > self.max_len:
            raise ValueError(f"LearnedPositions: sequence length T={t} exceeds max_len={self.max_len}")
        return x + self.weight[:t]

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, d_model={self.d_model}"
