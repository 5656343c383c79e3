"""Elman recurrent network whose weights all live in called ``nn.Linear`` modules.

``torch.nn.RNN`` keeps its weights as bare parameters used inside a fused kernel, so a recorder
that hooks ``nn.Linear`` modules sees nothing. :class:`ElmanRNN` computes the same function with
one ``ih`` and one ``hh`` Linear per layer, each called as a module:

    h_t = act(ih(x_t) + hh(h_{t-1}))

``ih`` is called once per layer on the whole (N, T, in) sequence (its input does not depend on
the recurrence, so this is the same product as T separate calls, with T times fewer hook calls);
``hh`` is called once per time step on (N, H), including t = 0 with h0 (zeros by default), as
``torch.nn.RNN`` also adds ``W_hh h0 + b_hh`` there.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .activations import ActivationFn, activation_function
from .recurrent import RecurrentLayer, check_sequence, copy_recurrent_weights, recurrent_layers, reset_recurrent_


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
        *,
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
        self._act: ActivationFn = activation_function(nonlinearity, "ElmanRNN nonlinearity")
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
        for layer, h in zip(recurrent_layers(self.layers), h0.unbind(0)):
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
