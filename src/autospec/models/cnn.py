"""Convolutional families: cnn1d (ICA time courses, (C, T)), cnn2d (MNIST, (H, W) or (C, H, W);
ICA time courses as a one-channel T × C image), cnn3d (ICA spatial maps, (X, Y, Z) or (C, X, Y, Z)).

Design (no BatchNorm, no pooling layers, no ConvTranspose): ``convs.0 ... convs.k`` with
``hidden`` output channels, kernel k (odd), padding k // 2, each followed by the activation.
classify: global average over all positions, then the Linear ``head`` -> logits.
autoencode: stride 1 everywhere (every map keeps the input's size), then a last Conv
``decoder`` back to the input's channel count, no activation; output has the input's shape.
"""

from __future__ import annotations

from itertools import pairwise

from torch import Tensor, nn

from ..errors import InputError
from ..nn.activations import activation_function
from .registry import BatteryModel, check_input, n_logits, register

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


class ConvNet(BatteryModel):
    """A stack of ``ndim``-D convolutions; see the module docstring for the design."""

    def __init__(
        self,
        ndim: int,
        task: str,
        input_shape: tuple[int, ...],
        n_classes: int | None,
        hidden: tuple[int, ...],
        *,
        activation: str,
        kernel_size: int,
        stride: int,
    ) -> None:
        super().__init__()
        self.in_shape = input_shape
        self.task = task
        self.ndim = ndim
        self.activation = activation
        self._act = activation_function(activation)
        # a sample without a channel axis gets one (and loses it again on the way out)
        self.add_channel = len(input_shape) == ndim
        channels = 1 if self.add_channel else input_shape[0]
        conv = _CONV[ndim]
        pad = kernel_size // 2
        widths = [channels, *hidden]
        self.convs = nn.ModuleList(conv(a, b, kernel_size, stride=stride, padding=pad) for a, b in pairwise(widths))
        if task == "classify":
            self.head = nn.Linear(hidden[-1], n_logits(n_classes, f"cnn{ndim}d"))
        else:
            self.decoder = conv(hidden[-1], channels, kernel_size, stride=1, padding=pad)

    def forward(self, x: Tensor) -> Tensor:
        check_input(x, self.in_shape, f"cnn{self.ndim}d")
        h = x.unsqueeze(1) if self.add_channel else x
        for conv in self.convs:
            h = self._act(conv(h))
        if self.task == "classify":
            logits: Tensor = self.head(h.mean(dim=tuple(range(2, h.dim()))))
            return logits
        y: Tensor = self.decoder(h)
        return y.squeeze(1) if self.add_channel else y


def _build(
    ndim: int,
    task: str,
    input_shape: tuple[int, ...],
    n_classes: int | None,
    hidden: tuple[int, ...],
    *,
    activation: str,
    kernel_size: int,
    stride: int,
    shapes: str,
) -> ConvNet:
    family = f"cnn{ndim}d"
    if len(input_shape) not in ((ndim + 1,) if ndim == 1 else (ndim, ndim + 1)):
        raise InputError(f"{family}: input_shape must be {shapes}, got {input_shape}")
    if not hidden:
        raise InputError(f"{family}: hidden must name at least one channel count")
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise InputError(f"{family}: kernel_size must be a positive odd int, got {kernel_size!r}")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise InputError(f"{family}: stride must be a positive int, got {stride!r}")
    if task == "autoencode" and stride != 1:
        raise InputError(f"{family}: autoencode keeps the input's size and needs stride 1, got stride={stride}")
    return ConvNet(
        ndim, task, input_shape, n_classes, hidden, activation=activation, kernel_size=kernel_size, stride=stride
    )


@register("cnn1d")
def build_cnn1d(
    task: str,
    input_shape: tuple[int, ...],
    n_classes: int | None,
    hidden: tuple[int, ...],
    activation: str,
    *,
    kernel_size: int = 3,
    stride: int = 1,
) -> ConvNet:
    """Input (C, T): channels are the ICA components, positions the time points."""
    return _build(
        1,
        task,
        input_shape,
        n_classes,
        hidden,
        activation=activation,
        kernel_size=kernel_size,
        stride=stride,
        shapes="(C, T)",
    )


@register("cnn2d")
def build_cnn2d(
    task: str,
    input_shape: tuple[int, ...],
    n_classes: int | None,
    hidden: tuple[int, ...],
    activation: str,
    *,
    kernel_size: int = 3,
    stride: int = 1,
) -> ConvNet:
    """Input (H, W) or (C, H, W), e.g. (28, 28) or (1, 28, 28) for MNIST, or (T, C) for ICA time
    courses: the T × C matrix is a one-channel image (kernels span neighbouring time points and
    neighbouring components in the data's component order)."""
    return _build(
        2,
        task,
        input_shape,
        n_classes,
        hidden,
        activation=activation,
        kernel_size=kernel_size,
        stride=stride,
        shapes="(H, W) or (C, H, W)",
    )


@register("cnn3d")
def build_cnn3d(
    task: str,
    input_shape: tuple[int, ...],
    n_classes: int | None,
    hidden: tuple[int, ...],
    activation: str,
    *,
    kernel_size: int = 3,
    stride: int | None = None,
) -> ConvNet:
    """Input (X, Y, Z) or (C, X, Y, Z). Default stride: 2 for classify (small maps), 1 for autoencode."""
    if stride is None:
        stride = 2 if task == "classify" else 1
    return _build(
        3,
        task,
        input_shape,
        n_classes,
        hidden,
        activation=activation,
        kernel_size=kernel_size,
        stride=stride,
        shapes="(X, Y, Z) or (C, X, Y, Z)",
    )
