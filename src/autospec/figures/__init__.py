"""Figures (matplotlib Agg), each saved as PNG (200 dpi) + PDF with an embedded provenance ID
and a ``.prov.json`` sidecar (see :mod:`autospec.provenance`)."""

from .brain import brain_maps, group_mean_maps
from .spectra_figure import layer_triptych, spectra_figure, training_curves

__all__ = ["brain_maps", "group_mean_maps", "layer_triptych", "spectra_figure", "training_curves"]
