"""The model battery: :func:`build_model` over the registered families.

Importing this package registers every family (mlp, elman, lstm, cnn1d, cnn2d, cnn3d, bert).
"""

from __future__ import annotations

from . import bert, cnn, mlp, rnn  # noqa: F401  (imported for their @register side effect)
from .registry import TASKS, available_families, build_model, register

__all__ = ["TASKS", "available_families", "build_model", "register"]
