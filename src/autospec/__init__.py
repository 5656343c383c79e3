"""AutoSpec: exact spectral introspection of neural-network training.

The public entry point is :class:`SpectralRecorder`::

    rec = autospec.SpectralRecorder(model)
    with rec.record(groups=g) as snap:
        loss = loss_fn(model(x), y)
        loss.backward()
    snap.singular_values("fc1.weight", stat="grad", group=0)
"""

__version__ = "0.1.0"

from .spectral import Snapshot, SpectraWriter, SpectralRecorder, read_spectra  # noqa: E402

__all__ = ["Snapshot", "SpectraWriter", "SpectralRecorder", "read_spectra", "__version__"]
