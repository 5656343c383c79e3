"""The model battery's registry: ``@register("family")`` builders and :func:`build_model`.

A builder is called as ``builder(task, input_shape, n_classes, hidden, activation, **opts)``
after :func:`build_model` has validated the common arguments; family-specific options are the
builder's keyword-only parameters (unknown ones are rejected by name here).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from torch import Tensor, nn

from ..errors import InputError
from ..nn.activations import ACTIVATIONS

TASKS = ("classify", "autoencode")


class BatteryModel(nn.Module):
    """A model of the battery: :func:`build_model` records its family, task and input shape."""

    family: str
    task: str
    input_shape: tuple[int, ...]


Builder = Callable[..., BatteryModel]
_B = TypeVar("_B", bound=Builder)
_FAMILIES: dict[str, Builder] = {}


def register(name: str) -> Callable[[_B], _B]:
    """Decorator adding a builder to the battery under ``name`` (each name once)."""

    def deco(fn: _B) -> _B:
        if name in _FAMILIES:
            raise ValueError(f"model family {name!r} is already registered")
        _FAMILIES[name] = fn
        return fn

    return deco


def available_families() -> list[str]:
    """Names of the registered model families, sorted."""
    return sorted(_FAMILIES)


def check_input(x: Tensor, input_shape: tuple[int, ...], family: str) -> None:
    """Raise ValueError unless ``x`` is (N, *input_shape)."""
    if tuple(x.shape[1:]) != input_shape:
        raise ValueError(f"{family}: expected input (N, {', '.join(map(str, input_shape))}), got {tuple(x.shape)}")


def n_logits(n_classes: int | None, family: str) -> int:
    """The output width of a ``classify`` model: ``n_classes`` (:func:`build_model` checks it)."""
    if n_classes is None:
        raise InputError(f"{family}: classify needs n_classes >= 2, got None")
    return n_classes


def equal_widths(hidden: tuple[int, ...], family: str, unit: str) -> int:
    """The one width a stacked family uses; InputError when the widths differ."""
    if len(set(hidden)) != 1:
        raise InputError(f"{family}: all hidden widths must be equal ({unit} of every layer), got {list(hidden)}")
    return hidden[0]


def _as_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise InputError(f"input_shape must be a sequence of positive ints, got {input_shape!r}") from None
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise InputError(f"input_shape must be a non-empty sequence of positive ints, got {input_shape!r}")
    return shape


def _as_hidden(hidden: Sequence[int] | int) -> tuple[int, ...]:
    given: Any = (hidden,) if isinstance(hidden, int) and not isinstance(hidden, bool) else hidden  # user input
    try:
        widths = tuple(given)
    except TypeError:
        raise InputError(f"hidden must be a sequence of positive ints, got {hidden!r}") from None
    if any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        raise InputError(f"hidden must be a sequence of positive ints, got {hidden!r}")
    return widths


def build_model(
    family: str,
    task: str,
    input_shape: Sequence[int],
    n_classes: int | None,
    *,
    hidden: Sequence[int] = (32,),
    activation: str = "relu",
    **opts: Any,
) -> BatteryModel:
    """Build a model of the battery.

    Parameters
    ----------
    family
        One of :func:`available_families` (mlp, elman, lstm, cnn1d, cnn2d, cnn3d, bert).
    task
        ``"classify"`` (output: logits (N, n_classes)) or ``"autoencode"`` (output: a
        reconstruction of the input's shape (N, *input_shape)).
    input_shape
        Shape of one sample, without N.
    n_classes
        Number of classes (>= 2) for ``classify``; ignored (may be None) for ``autoencode``.
    hidden
        Layer widths (units / channels / d_model); ``len(hidden)`` is the depth.
    activation
        One of ``relu``, ``tanh``, ``sigmoid``, ``linear``, ``gelu``.
    **opts
        Family options (e.g. ``nhead`` for bert, ``stride`` for the CNNs).

    The returned module carries ``family``, ``task`` and ``input_shape`` attributes. Every weight
    except LayerNorm and learned positions is in an ``nn.Linear`` / ``nn.ConvNd`` called as a module.
    """
    if family not in _FAMILIES:
        raise InputError(f"unknown model family {family!r}; available: {', '.join(available_families())}")
    if task not in TASKS:
        raise InputError(f"{family}: unknown task {task!r}; allowed: {', '.join(TASKS)}")
    if activation not in ACTIVATIONS:
        raise InputError(f"{family}: activation {activation!r} is not one of: {', '.join(ACTIVATIONS)}")
    shape = _as_shape(input_shape)
    widths = _as_hidden(hidden)
    if task == "classify" and (isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2):
        raise InputError(f"{family}: classify needs n_classes >= 2, got {n_classes!r}")
    builder = _FAMILIES[family]
    allowed = sorted(
        p.name for p in inspect.signature(builder).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY
    )
    unknown = sorted(set(opts) - set(allowed))
    if unknown:
        raise InputError(f"{family}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(allowed) or '(none)'}")
    model = builder(task, shape, n_classes, widths, activation, **opts)
    model.family = family
    model.task = task
    model.input_shape = shape
    return model
