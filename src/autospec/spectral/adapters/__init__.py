"""The built-in entries of the spectral core's registries (see :mod:`autospec.spectral.registry`).

One file per layer kind. Importing this package registers them all; adding a layer kind is one
more file here (imported below) or a decorated class in the user's own code.
"""

from __future__ import annotations

from . import autospec_modules, conv, linear, torch_modules
from .base import LayerAdapter

__all__ = ["LayerAdapter", "autospec_modules", "conv", "linear", "torch_modules"]
