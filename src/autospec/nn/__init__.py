"""Hookable building blocks: every weight sits in an ``nn.Linear`` that is called as a module.

The spectral recorder sees a layer only through forward hooks on ``nn.Linear`` / ``nn.ConvNd``;
torch's fused ``nn.RNN``, ``nn.LSTM`` and ``nn.MultiheadAttention`` hide their weights from it.
These modules compute the same functions (``from_torch`` copies torch's weights exactly).
"""

from __future__ import annotations

from .activations import ACTIVATIONS, activation_function
from .attention import MultiheadAttention, TransformerEncoderLayer
from .elman import ElmanRNN
from .lstm import LSTM
from .positions import LearnedPositions

__all__ = [
    "ACTIVATIONS",
    "LSTM",
    "ElmanRNN",
    "LearnedPositions",
    "MultiheadAttention",
    "TransformerEncoderLayer",
    "activation_function",
]
