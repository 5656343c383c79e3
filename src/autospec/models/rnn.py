"""Recurrent families: Elman RNN (sinusoids) and LSTM (ICA time courses), input (T, F)."""

from __future__ import annotations

from torch import Tensor, nn

from ..errors import InputError
from ..nn.elman import ElmanRNN
from ..nn.lstm import LSTM
from .registry import BatteryModel, check_input, equal_widths, n_logits, register


class RecurrentNet(BatteryModel):
    """``rnn`` over (N, T, F), then ``head`` (classify: Linear on the last time step's top hidden
    state) or ``decoder`` (autoencode: the same Linear applied to every time step's output, H -> F)."""

    def __init__(self, rnn: ElmanRNN | LSTM, task: str, input_shape: tuple[int, int], n_classes: int | None) -> None:
        super().__init__()
        self.in_shape = input_shape
        self.task = task
        self.rnn = rnn
        if task == "classify":
            self.head = nn.Linear(rnn.hidden_size, n_logits(n_classes, type(rnn).__name__))
        else:
            self.decoder = nn.Linear(rnn.hidden_size, input_shape[1])

    def forward(self, x: Tensor) -> Tensor:
        check_input(x, self.in_shape, type(self.rnn).__name__)
        out, _ = self.rnn(x)  # (N, T, H); out[:, -1] is the top layer's h_T
        y: Tensor = self.head(out[:, -1]) if self.task == "classify" else self.decoder(out)
        return y


def _sequence_shape(input_shape: tuple[int, ...], family: str) -> tuple[int, int]:
    if len(input_shape) != 2:
        raise InputError(f"{family}: input_shape must be (T, F) (time points, features), got {input_shape}")
    return input_shape


def _layers(hidden: tuple[int, ...], family: str) -> tuple[int, int]:
    if not hidden:
        raise InputError(f"{family}: hidden must name at least one layer width")
    return equal_widths(hidden, family, "hidden units"), len(hidden)


@register("elman")
def build_elman(
    task: str, input_shape: tuple[int, ...], n_classes: int | None, hidden: tuple[int, ...], activation: str
) -> RecurrentNet:
    """ElmanRNN with hidden[0] units and len(hidden) layers; ``activation`` is its nonlinearity."""
    shape = _sequence_shape(input_shape, "elman")
    width, depth = _layers(hidden, "elman")
    rnn = ElmanRNN(shape[1], width, depth, nonlinearity=activation, batch_first=True)
    return RecurrentNet(rnn, task, shape, n_classes)


@register("lstm")
def build_lstm(
    task: str, input_shape: tuple[int, ...], n_classes: int | None, hidden: tuple[int, ...], activation: str
) -> RecurrentNet:
    """LSTM with hidden[0] units and len(hidden) layers.

    ``activation`` replaces tanh in the cell candidate and the output nonlinearity
    (``c_t = σ(f)·c + σ(i)·act(g)``, ``h_t = σ(o)·act(c_t)``); the gates stay sigmoid.
    """
    shape = _sequence_shape(input_shape, "lstm")
    width, depth = _layers(hidden, "lstm")
    rnn = LSTM(shape[1], width, depth, batch_first=True, activation=activation)
    return RecurrentNet(rnn, task, shape, n_classes)
