"""The spectral core: exact singular values of per-layer gradients G = AᵀΔ, of A and of Δ.

Knows nothing about cohorts, workflows or figures. Entry points: :class:`SpectralRecorder`,
:class:`Snapshot`, :class:`SpectraWriter`, :func:`read_spectra`, :func:`check`; extension
points in :mod:`autospec.spectral.registry`.
"""

from .check import CheckReport, check
from .linalg import numerical_rank
from .recorder import SpectralRecorder
from .snapshot import STATS, WHOLE, Snapshot
from .store import (
    SpectraWriter,
    read_metadata,
    read_principal_angles,
    read_spectra,
    read_subspaces,
    subspaces_path,
)
from .subspaces import principal_angles
from .verify import CheckFailed

__all__ = [
    "STATS",
    "WHOLE",
    "CheckFailed",
    "CheckReport",
    "Snapshot",
    "SpectraWriter",
    "SpectralRecorder",
    "check",
    "numerical_rank",
    "principal_angles",
    "read_metadata",
    "read_principal_angles",
    "read_spectra",
    "read_subspaces",
    "subspaces_path",
]
