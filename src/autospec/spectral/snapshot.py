"""The result of one recorded step: singular values (and optionally vectors) by (key, stat, group).

A recorder fills a snapshot through its builder methods (:meth:`Snapshot.add_spectrum`,
:meth:`Snapshot.add_vectors`, :meth:`Snapshot.mark_grad_only`) and closes it with
:meth:`Snapshot.finish`; after that it is read-only, and every array it returns is read-only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .groups import check_group_arg
from .options import STATS
from .subspaces import SIDES, principal_angles

WHOLE = -1  # group id of the whole batch in stored tables
__all__ = ["STATS", "WHOLE", "Snapshot"]

SpectrumKey = tuple[str, str, int]


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


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
    _values: dict[SpectrumKey, np.ndarray] = field(default_factory=dict, init=False, repr=False)
    _ranks: dict[SpectrumKey, int] = field(default_factory=dict, init=False, repr=False)
    _vectors: dict[tuple[str, int, str], np.ndarray] = field(default_factory=dict, init=False, repr=False)
    _keys: list[str] = field(default_factory=list, init=False, repr=False)
    _grad_only: set[str] = field(default_factory=set, init=False, repr=False)
    _finished: bool = field(default=False, init=False, repr=False)

    # ------------------------------------------------------------------ builder (used by recorders)
    def add_spectrum(self, key: str, stat: str, group: int, values: np.ndarray, rank: int) -> None:
        """Store σ (descending; values beyond ``rank`` must be exactly 0) of one matrix."""
        self._check_open()
        self._values[(key, stat, int(group))] = _frozen(np.asarray(values, dtype=np.float64))
        self._ranks[(key, stat, int(group))] = int(rank)

    def add_vectors(self, key: str, group: int, left: np.ndarray, right: np.ndarray) -> None:
        """Store the top singular vectors of the gradient: rows of ``left`` (k, n_out), ``right`` (k, n_in)."""
        self._check_open()
        self._vectors[(key, int(group), "left")] = _frozen(left)
        self._vectors[(key, int(group), "right")] = _frozen(right)

    def mark_grad_only(self, keys: Iterable[str]) -> None:
        """These weights' modules hide A and Δ: only ``grad`` can exist for them."""
        self._check_open()
        self._grad_only.update(keys)

    def finish(self, order: Iterable[str]) -> None:
        """Close the snapshot; ``order`` ranks keys (``named_parameters`` order)."""
        self._check_open()
        rank = {k: i for i, k in enumerate(order)}
        self._keys = sorted({k for (k, _, _) in self._values}, key=lambda k: rank.get(k, len(rank)))
        self._finished = True

    def _check_open(self) -> None:
        if self._finished:
            raise RuntimeError(f"snapshot of step {self.step} is finished and read-only")

    # ------------------------------------------------------------------ reading
    @property
    def keys(self) -> list[str]:
        """Recorded weights, named and ordered as in ``model.named_parameters()``."""
        return list(self._keys)

    def _where(self, key: str, stat: str, group: object) -> SpectrumKey:
        if stat not in STATS:
            raise ValueError(f"stat must be one of {STATS}, got {stat!r}")
        if key not in self._keys:
            raise KeyError(f"{key!r} was not recorded at step {self.step}; recorded: {self._keys}")
        if stat != "grad" and key in self._grad_only:
            raise ValueError(
                f"stat {stat!r} is not available for {key!r}: its module hides its inputs and "
                "adjoints (only 'grad' is recorded for it; use the autospec.nn modules to see A and Δ)"
            )
        gid = check_group_arg(group)
        g = WHOLE if gid is None else gid
        if g != WHOLE and g not in self.groups:
            raise KeyError(f"group {group!r} not in this step's groups {self.groups}")
        if (key, stat, g) not in self._values:
            raise KeyError(f"stat {stat!r} was not recorded for {key!r} (recorder stats option)")
        return (key, stat, g)

    def singular_values(self, key: str, stat: str = "grad", group: int | None = None) -> np.ndarray:
        """σ (float64, descending, read-only) of ``stat`` for weight ``key``, whole batch or one group.

        Values beyond the numerical rank (:meth:`rank`) are exactly 0.0.
        """
        return self._values[self._where(key, stat, group)]

    def rank(self, key: str, stat: str = "grad", group: int | None = None) -> int:
        """Numerical rank: the number of σ above ``max(m, n) · eps(layer dtype) · σ₁``."""
        return self._ranks[self._where(key, stat, group)]

    def rank_zero(self, key: str, stat: str = "grad", group: int | None = None) -> np.ndarray:
        """Boolean mask of the values beyond the numerical rank (stored as exact zeros)."""
        where = self._where(key, stat, group)
        values = self._values[where]
        return _frozen((np.arange(len(values)) >= self._ranks[where]) & ~np.isnan(values))

    def singular_vectors(self, key: str, group: int | None = None, side: str = "right") -> np.ndarray:
        """Top singular vectors of the gradient as rows ``(k, n)``: ``left`` (output space, n_out)
        or ``right`` (input space, n_in). Needs ``SpectralRecorder(subspaces=k)``; at most the
        numerical rank of vectors are kept (beyond it they are not defined)."""
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {side!r}")
        key_, _, g = self._where(key, "grad", group)
        try:
            return self._vectors[(key_, g, side)]
        except KeyError:
            raise KeyError(
                f"no singular vectors for {key!r} at step {self.step}: record with SpectralRecorder(subspaces=k)"
            ) from None

    def principal_angles(
        self, key: str, g1: int | None, g2: int | None, k: int | None = None, side: str = "right"
    ) -> np.ndarray:
        """Principal angles (radians, ascending) between two groups' top-``k`` gradient subspaces.

        ``g1``/``g2``: group ids (None = the whole batch). ``side``: ``"right"`` compares input-space
        directions (rows of the weight), ``"left"`` output-space ones. ``k`` defaults to the most
        both groups have; asking for more than a group's numerical rank (or than ``subspaces``)
        raises: a subspace beyond the rank is not defined.
        """
        va, vb = self.singular_vectors(key, g1, side), self.singular_vectors(key, g2, side)
        have = min(len(va), len(vb))
        k = have if k is None else k
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        if k > have:
            short = g1 if len(va) < len(vb) else g2
            raise ValueError(
                f"{key!r} group {short}: only {have} singular vectors are defined at step {self.step} "
                f"(numerical rank or the recorder's subspaces option), k={k} asked"
            )
        return principal_angles(va[:k], vb[:k])

    def items(self) -> list[tuple[SpectrumKey, np.ndarray]]:
        """``((key, stat, group), values)`` in a stable order (key order, stat, group)."""
        pos = {k: i for i, k in enumerate(self._keys)}
        return sorted(self._values.items(), key=lambda kv: (pos[kv[0][0]], kv[0][1], kv[0][2]))

    def to_frame(self) -> pd.DataFrame:
        """Long table: step, key, stat, group, index, value, rank_zero (see :mod:`.store`)."""
        from .store import frame_from_snapshot

        return frame_from_snapshot(self)

    def vectors_frame(self) -> pd.DataFrame:
        """Singular vectors as a long table (see :mod:`.store`); empty without ``subspaces``."""
        from .store import vectors_frame

        return vectors_frame(self)

    def vector_items(self) -> list[tuple[tuple[str, int, str], np.ndarray]]:
        pos = {k: i for i, k in enumerate(self._keys)}
        return sorted(self._vectors.items(), key=lambda kv: (pos[kv[0][0]], kv[0][1], kv[0][2]))

    def ranks(self) -> dict[SpectrumKey, int]:
        return dict(self._ranks)
