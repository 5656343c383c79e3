"""Elman recurrent network whose weights all live in called ``nn.Linear`` modules.

``torch.nn.RNN`` keeps its weights as bare parameters used inside a fused kernel, so a recorder
that hooks ``nn.Linear`` modules sees nothing. :class:`ElmanRNN` computes the same function with
one ``ih`` and one ``hh`` Linear per layer, each called as a module:

    h_t = act(ih(x_t) + hh(h_{t-1}))

``ih`` is called once per layer on the whole (N, T, in) sequence (its input does not depend on
the recurrence, so this is the same product as T separate calls, with T times fewer hook calls);
``hh`` is called once per time step on (N, H), including t = 0 with h0 (zeros by default), as
``torch.nn.RNN`` also adds ``W_hh h0 + b_hh`` there.

This module also holds the element-wise activations shared by :mod:`autospec.nn` and
:mod:`autospec.models` (:data:`ACTIVATIONS`, :func:`activation_function`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ActivationFn = Callable[[Tensor], Tensor]


def _identity(x: Tensor) -> Tensor:
    return x


def _gelu(x: Tensor) -> Tensor:
    return F.gelu(x)


# Functional (never in-place): in-place activations break full backward hooks.
ACTIVATIONS: dict[str, ActivationFn] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "linear": _identity,
    "gelu": _gelu,
}


def activation_function(name: str, what: str = "activation") -> ActivationFn:
    """The element-wise function called ``name``; ValueError naming the allowed ones."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        allowed = ", ".join(ACTIVATIONS)
        raise ValueError(f"{what} {name!r} is not one of: {allowed}") from None


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


class ElmanRNN(nn.Module):
    """Drop-in, hookable replacement for ``torch.nn.RNN`` (unidirectional, no dropout).

    Parameters
    ----------
    input_size, hidden_size, num_layers, bias, batch_first
        As ``torch.nn.RNN`` (``batch_first`` defaults to True here).
    nonlinearity
        ``"tanh"`` or ``"relu"`` (as torch), or ``"sigmoid"``, ``"linear"``, ``"gelu"``.

    Parameter names are ``layers.{l}.ih.weight``, ``layers.{l}.ih.bias``, ``layers.{l}.hh.weight``,
    ``layers.{l}.hh.bias`` (torch's ``weight_ih_l{l}``, ``bias_ih_l{l}``, ``weight_hh_l{l}``,
    ``bias_hh_l{l}``).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = True,
    ) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1 or num_layers < 1:
            raise ValueError(
                f"ElmanRNN: input_size, hidden_size and num_layers must be >= 1, got "
                f"{input_size}, {hidden_size}, {num_layers}"
            )
        self._act = activation_function(nonlinearity, "ElmanRNN nonlinearity")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.nonlinearity = nonlinearity
        self.bias = bias
        self.batch_first = batch_first
        self.layers = nn.ModuleList(
            RecurrentLayer(input_size if i == 0 else hidden_size, hidden_size, hidden_size, bias)
            for i in range(num_layers)
        )
        reset_recurrent_(self.layers, hidden_size)

    def forward(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Return ``(output, h_n)``: output (N, T, H) (batch_first) and h_n (num_layers, N, H)."""
        if not self.batch_first:
            x = x.transpose(0, 1)
        check_sequence(x, self.input_size, "ElmanRNN")
        n, t, _ = x.shape
        if t == 0:
            raise ValueError("ElmanRNN: input has 0 time steps")
        if h0 is None:
            h0 = x.new_zeros(self.num_layers, n, self.hidden_size)
        elif tuple(h0.shape) != (self.num_layers, n, self.hidden_size):
            raise ValueError(
                f"ElmanRNN: h0 has shape {tuple(h0.shape)}, expected {(self.num_layers, n, self.hidden_size)}"
            )
        seq = x
        finals = []
        for layer, h in zip(self.layers, h0.unbind(0)):
            pre = layer.ih(seq)  # (N, T, H) in one call: does not depend on the recurrence
            steps = []
            for step in range(t):
                h = self._act(pre[:, step] + layer.hh(h))
                steps.append(h)
            seq = torch.stack(steps, dim=1)
            finals.append(h)
        out = seq if self.batch_first else seq.transpose(0, 1)
        return out, torch.stack(finals, dim=0)

    @classmethod
    def from_torch(cls, rnn: nn.RNN) -> ElmanRNN:
        """Copy of ``rnn`` (same weights, dtype, device) built from called Linear modules."""
        if not isinstance(rnn, nn.RNN):
            raise TypeError(f"ElmanRNN.from_torch expects torch.nn.RNN, got {type(rnn).__name__}")
        if rnn.bidirectional:
            raise ValueError("ElmanRNN.from_torch: bidirectional RNNs are not supported")
        if rnn.dropout:
            raise ValueError(f"ElmanRNN.from_torch: inter-layer dropout={rnn.dropout} is not supported")
        new = cls(
            rnn.input_size,
            rnn.hidden_size,
            rnn.num_layers,
            nonlinearity=rnn.nonlinearity,
            bias=rnn.bias,
            batch_first=rnn.batch_first,
        )
        copy_recurrent_weights(new.layers, rnn)
        return new


def copy_recurrent_weights(layers: nn.ModuleList, rnn: nn.RNNBase) -> None:
    """Copy torch's ``weight_{ih,hh}_l{l}`` / ``bias_{ih,hh}_l{l}`` into ``layers[l].{ih,hh}``."""
    ref = rnn.weight_ih_l0
    layers.to(device=ref.device, dtype=ref.dtype)
    with torch.no_grad():
        for i, layer in enumerate(layers):
            for part in ("ih", "hh"):
                lin: nn.Linear = getattr(layer, part)
                lin.weight.copy_(getattr(rnn, f"weight_{part}_l{i}"))
                if lin.bias is not None:
                    lin.bias.copy_(getattr(rnn, f"bias_{part}_l{i}"))
