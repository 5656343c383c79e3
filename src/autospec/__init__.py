"""AutoSpec: exact spectral introspection of neural-network training.

The public entry point is :class:`SpectralRecorder`::

    rec = autospec.SpectralRecorder(model)
    with rec.record(groups=g) as snap:
        loss = loss_fn(model(x), y)
        loss.backward()
    snap.singular_values("fc1.weight", stat="grad", group=0)

``autospec.check(model, example_inputs)`` lists the route each weight takes, and why.
"""

__version__ = "0.1.0"

_LAZY = {"Snapshot", "SpectraWriter", "SpectralRecorder", "check", "read_spectra"}


def __getattr__(name: str) -> object:
    # torch is imported only when the spectral core is used: light CLI steps start fast
    if name in _LAZY:
        from . import spectral

        return getattr(spectral, name)
    raise AttributeError(f"module 'autospec' has no attribute {name!r}")


__all__ = ["Snapshot", "SpectraWriter", "SpectralRecorder", "__version__", "check", "read_spectra"]
