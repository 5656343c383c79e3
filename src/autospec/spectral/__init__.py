"""The spectral core: exact singular values of per-layer gradients G = AᵀΔ, of A and of Δ.

Knows nothing about cohorts, workflows or figures. Entry points: :class:`SpectralRecorder`,
:class:`Snapshot`, :class:`SpectraWriter`, :func:`read_spectra`.
"""

from .linalg import numerical_rank
from .recorder import SpectralRecorder
from .snapshot import STATS, WHOLE, Snapshot
from .store import SpectraWriter, read_metadata, read_spectra

__all__ = [
    "STATS",
    "WHOLE",
    "Snapshot",
    "SpectraWriter",
    "SpectralRecorder",
    "numerical_rank",
    "read_metadata",
    "read_spectra",
]
