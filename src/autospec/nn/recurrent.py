"""Building blocks shared by the hookable recurrent networks (:mod:`.elman`, :mod:`.lstm`)."""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import Tensor, nn


def check_sequence(x: Tensor, input_size: int, owner: str) -> None:
    """Raise ValueError unless ``x`` is a 3-D sequence batch with ``input_size`` features."""
    if x.dim() != 3:
        raise ValueError(f"{owner}: expected a 3-D input (batch, time, features), got shape {tuple(x.shape)}")
    if x.shape[-1] != input_size:
        raise ValueError(f"{owner}: input has {x.shape[-1]} features, module expects input_size={input_size}")


def reset_recurrent_(layers: nn.ModuleList, hidden_size: int) -> None:
    """torch.nn.RNN / LSTM initialisation: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size)
    for p in layers.parameters():
        nn.init.uniform_(p, -bound, bound)


class RecurrentLayer(nn.Module):
    """One recurrent layer: input projection ``ih`` and recurrent projection ``hh``.

    Both map to ``out_per_step`` features: H for an Elman layer, 4H (the gates) for an LSTM layer.
    """

    def __init__(self, input_size: int, hidden_size: int, out_per_step: int, bias: bool) -> None:
        super().__init__()
        self.ih = nn.Linear(input_size, out_per_step, bias=bias)
        self.hh = nn.Linear(hidden_size, out_per_step, bias=bias)


def recurrent_layers(layers: nn.ModuleList) -> list[RecurrentLayer]:
    """``layers`` as the RecurrentLayers they are (torch types a ModuleList's items as plain Modules)."""
    return [cast(RecurrentLayer, layer) for layer in layers]


def copy_recurrent_weights(layers: nn.ModuleList, rnn: nn.RNNBase) -> None:
    """Copy torch's ``weight_{ih,hh}_l{l}`` / ``bias_{ih,hh}_l{l}`` into ``layers[l].{ih,hh}``."""
    ref = rnn.all_weights[0][0]  # weight_ih_l0 (typed, unlike the attribute)
    layers.to(device=ref.device, dtype=ref.dtype)
    with torch.no_grad():
        for i, layer in enumerate(layers):
            for part in ("ih", "hh"):
                lin: nn.Linear = getattr(layer, part)
                lin.weight.copy_(getattr(rnn, f"weight_{part}_l{i}"))
                if lin.bias is not None:
                    lin.bias.copy_(getattr(rnn, f"bias_{part}_l{i}"))
