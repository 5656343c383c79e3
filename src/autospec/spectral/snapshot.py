"""The result of one recorded step: singular values by (key, stat, group)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

WHOLE = -1  # group id of the whole batch in stored tables
STATS = ("grad", "act", "delta")


@dataclass
class Snapshot:
    """Spectra of one training step.

    Attributes
    ----------
    step : int
        Index of the ``record()`` call that produced it (0-based).
    recorded : bool
        False on steps skipped by ``every=k``: then there are no keys.
    groups : list[int]
        Group ids present in the batch (empty when no groups were given).
    """

    step: int
    recorded: bool = True
    groups: list[int] = field(default_factory=list)
    _values: dict[tuple[str, str, int], np.ndarray] = field(default_factory=dict, repr=False)
    _keys: list[str] = field(default_factory=list, repr=False)
    _grad_only: set[str] = field(default_factory=set, repr=False)

    @property
    def keys(self) -> list[str]:
        """Recorded weights, named and ordered as in ``model.named_parameters()``."""
        return list(self._keys)

    def singular_values(self, key: str, stat: str = "grad", group: int | None = None) -> np.ndarray:
        """σ (float64, descending) of ``stat`` for weight ``key``, whole batch or one group."""
        if stat not in STATS:
            raise ValueError(f"stat must be one of {STATS}, got {stat!r}")
        if key not in self._keys:
            raise KeyError(f"{key!r} was not recorded at step {self.step}; recorded: {self._keys}")
        if stat != "grad" and key in self._grad_only:
            raise ValueError(
                f"stat {stat!r} is not available for {key!r}: its module hides its inputs and "
                "adjoints (only 'grad' is recorded for it; use the autospec.nn modules to see A and Δ)"
            )
        g = WHOLE if group is None else int(group)
        if g != WHOLE and g not in self.groups:
            raise KeyError(f"group {group!r} not in this step's groups {self.groups}")
        try:
            return self._values[(key, stat, g)]
        except KeyError:
            raise KeyError(f"stat {stat!r} was not recorded for {key!r} (recorder stats option)") from None

    def items(self):
        """Iterate ``((key, stat, group), values)`` in a stable order."""
        return sorted(self._values.items(), key=lambda kv: (self._keys.index(kv[0][0]), kv[0][1], kv[0][2]))

    def to_frame(self) -> pd.DataFrame:
        """Long table with columns step, key, stat, group, index, value (see store.py)."""
        from .store import frame_from_items

        return frame_from_items(self.step, self.items())
