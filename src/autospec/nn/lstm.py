"""LSTM whose weights all live in called ``nn.Linear`` modules (hookable ``torch.nn.LSTM``).

Per layer, ``ih`` = Linear(in, 4H) is called once on the whole sequence and ``hh`` = Linear(H, 4H)
once per time step (t = 0 included). Gate order is torch's: input, forget, cell (g), output::

    i, f, g, o = split(ih(x_t) + hh(h_{t-1}), H)
    c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * act(g)
    h_t = sigmoid(o) * act(c_t)

``act`` is tanh by default (torch's LSTM). Another ``activation`` replaces tanh in both places,
the cell candidate and the output nonlinearity; the gates i, f, o stay sigmoid (a gate is a
fraction in (0, 1) whatever the activation). This is how the model battery's LSTM panels with
ReLU / sigmoid / linear activations are meant (docs/training.md).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .activations import ActivationFn, activation_function
from .recurrent import RecurrentLayer, check_sequence, copy_recurrent_weights, recurrent_layers, reset_recurrent_


class LSTM(nn.Module):
    """Drop-in replacement for ``torch.nn.LSTM`` (unidirectional, no projection, no dropout).

    Parameter names are ``layers.{l}.ih.weight`` (4H, in), ``layers.{l}.ih.bias``,
    ``layers.{l}.hh.weight`` (4H, H), ``layers.{l}.hh.bias``, rows in gate order i, f, g, o.
    ``activation`` (default ``"tanh"``, torch's) replaces tanh in the cell candidate and the
    output; the gates stay sigmoid.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = True,
        *,
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        self._act: ActivationFn = activation_function(activation, "LSTM activation")
        self.activation = activation
        if input_size < 1 or hidden_size < 1 or num_layers < 1:
            raise ValueError(
                f"LSTM: input_size, hidden_size and num_layers must be >= 1, got "
                f"{input_size}, {hidden_size}, {num_layers}"
            )
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.layers = nn.ModuleList(
            RecurrentLayer(input_size if i == 0 else hidden_size, hidden_size, 4 * hidden_size, bias)
            for i in range(num_layers)
        )
        reset_recurrent_(self.layers, hidden_size)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Return ``(output, (h_n, c_n))``; output (N, T, H) (batch_first), h_n/c_n (layers, N, H)."""
        if not self.batch_first:
            x = x.transpose(0, 1)
        check_sequence(x, self.input_size, "LSTM")
        n, t, _ = x.shape
        if t == 0:
            raise ValueError("LSTM: input has 0 time steps")
        expected = (self.num_layers, n, self.hidden_size)
        if state is None:
            h0 = c0 = x.new_zeros(expected)
        else:
            h0, c0 = state
            if tuple(h0.shape) != expected or tuple(c0.shape) != expected:
                raise ValueError(
                    f"LSTM: state shapes {tuple(h0.shape)}, {tuple(c0.shape)}, expected {expected} for both"
                )
        seq = x
        h_fin, c_fin = [], []
        for layer, h, c in zip(recurrent_layers(self.layers), h0.unbind(0), c0.unbind(0)):
            pre = layer.ih(seq)  # (N, T, 4H) in one call: does not depend on the recurrence
            steps = []
            for step in range(t):
                i, f, g, o = (pre[:, step] + layer.hh(h)).chunk(4, dim=-1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * self._act(g)
                h = torch.sigmoid(o) * self._act(c)
                steps.append(h)
            seq = torch.stack(steps, dim=1)
            h_fin.append(h)
            c_fin.append(c)
        out = seq if self.batch_first else seq.transpose(0, 1)
        return out, (torch.stack(h_fin, dim=0), torch.stack(c_fin, dim=0))

    @classmethod
    def from_torch(cls, lstm: nn.LSTM) -> LSTM:
        """Copy of ``lstm`` (same weights, dtype, device) built from called Linear modules."""
        if not isinstance(lstm, nn.LSTM):
            raise TypeError(f"LSTM.from_torch expects torch.nn.LSTM, got {type(lstm).__name__}")
        if lstm.bidirectional:
            raise ValueError("LSTM.from_torch: bidirectional LSTMs are not supported")
        if lstm.proj_size:
            raise ValueError(f"LSTM.from_torch: proj_size={lstm.proj_size} is not supported")
        if lstm.dropout:
            raise ValueError(f"LSTM.from_torch: inter-layer dropout={lstm.dropout} is not supported")
        new = cls(lstm.input_size, lstm.hidden_size, lstm.num_layers, bias=lstm.bias, batch_first=lstm.batch_first)
        copy_recurrent_weights(new.layers, lstm)
        return new
