"""Multi-layer perceptron over the flattened sample (MNIST digits, FreeSurfer volumes)."""

from __future__ import annotations

import math
from itertools import pairwise

from torch import Tensor, nn

from ..nn.activations import activation_function
from .registry import BatteryModel, check_input, n_logits, register


class MLP(BatteryModel):
    """Linear layers ``layers.0 ... layers.k`` with the activation between them (none after the last).

    classify: D -> hidden... -> n_classes logits; autoencode: D -> hidden... -> D, reshaped to the
    input's shape (a linear output layer, no squashing).
    """

    def __init__(
        self, input_shape: tuple[int, ...], hidden: tuple[int, ...], out_shape: tuple[int, ...], activation: str
    ) -> None:
        super().__init__()
        self.in_shape = input_shape
        self.out_shape = out_shape
        self.activation = activation
        self._act = activation_function(activation)
        widths = [math.prod(input_shape), *hidden, math.prod(out_shape)]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(widths))

    def forward(self, x: Tensor) -> Tensor:
        check_input(x, self.in_shape, "mlp")
        h = x.flatten(1)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < last:
                h = self._act(h)
        return h.reshape(x.shape[0], *self.out_shape)


@register("mlp")
def build_mlp(
    task: str, input_shape: tuple[int, ...], n_classes: int | None, hidden: tuple[int, ...], activation: str
) -> MLP:
    """Any input shape (flattened). ``hidden=()`` gives a single Linear layer."""
    out_shape = (n_logits(n_classes, "mlp"),) if task == "classify" else input_shape
    return MLP(input_shape, hidden, out_shape, activation)
