"""The result of one recorded step: singular values (and optionally vectors) by (key, stat, group).

A recorder fills a snapshot through its builder methods (:meth:`Snapshot.add_spectrum`,
:meth:`Snapshot.add_vectors`, :meth:`Snapshot.add_sharing`, :meth:`Snapshot.mark_grad_only`) and
closes it with :meth:`Snapshot.finish`; after that it is read-only, and every array it returns is
read-only.

A recorder computing spectra off the critical path (the default) hands the snapshot over with its
keys known (:meth:`Snapshot.expect`) and fills it from a worker thread; every read of values waits
for that (:meth:`Snapshot.wait`), re-raises the worker's error if it failed, and issues its
warnings (e.g. non-finite gradients) in the reading thread.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from .groups import check_group_arg
from .options import STATS
from .subspaces import SIDES, principal_angles

WHOLE = -1  # group id of the whole batch in stored tables
__all__ = ["STATS", "WHOLE", "Snapshot"]

SpectrumKey = tuple[str, str, int]


class SharingSpectra(NamedTuple):
    """σ of the gradient along a weight's sharing dimension: one row of ``values`` per share.

    ``call``: which call of the weight in the step (time step of a recurrent cell called once per
    step); ``position``: which row of a sample within that call (token of a token-wise Linear,
    output position of a convolution, row-major over the output's spatial dims). ``values``
    ``(shares, L)`` descending, zero beyond ``ranks``.
    """

    call: np.ndarray
    position: np.ndarray
    values: np.ndarray
    ranks: np.ndarray


def _frozen(a: np.ndarray) -> np.ndarray:
    """A read-only array: ``a`` itself when it is already a read-only float array, else a copy."""
    if isinstance(a, np.ndarray) and not a.flags.writeable and a.dtype == np.float64:
        return a
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
    _bounds: dict[SpectrumKey, np.ndarray] = field(default_factory=dict, init=False, repr=False)
    _sharing: dict[tuple[str, int], SharingSpectra] = field(default_factory=dict, init=False, repr=False)
    _sharing_layout: dict[str, dict[str, object]] = field(default_factory=dict, init=False, repr=False)
    _finished: bool = field(default=False, init=False, repr=False)
    _expected: list[str] | None = field(default=None, init=False, repr=False)
    _done: threading.Event | None = field(default=None, init=False, repr=False)
    _error: BaseException | None = field(default=None, init=False, repr=False)
    _warnings: list[str] = field(default_factory=list, init=False, repr=False)

    # ------------------------------------------------------------------ builder (used by recorders)
    def add_spectrum(
        self, key: str, stat: str, group: int, values: np.ndarray, rank: int, *, error_bound: np.ndarray | None = None
    ) -> None:
        """Store σ (descending; values beyond ``rank`` must be exactly 0) of one matrix, and for
        values found by iteration their a-posteriori error bounds (None: exact route, bound 0)."""
        self._check_open()
        where = (key, stat, int(group))
        self._values[where] = _frozen(values)
        self._ranks[where] = int(rank)
        if error_bound is not None:
            self._bounds[where] = _frozen(np.asarray(error_bound, dtype=np.float64))

    def add_sharing(self, key: str, group: int, spectra: SharingSpectra, layout: dict[str, object]) -> None:
        """Store σ of the gradient per share (call, position) for one group (-1 = whole batch)."""
        self._check_open()
        self._sharing[(key, int(group))] = SharingSpectra(*(_frozen(a) for a in spectra))
        self._sharing_layout[key] = dict(layout)

    def add_vectors(self, key: str, group: int, left: np.ndarray, right: np.ndarray) -> None:
        """Store the top singular vectors of the gradient: rows of ``left`` (k, n_out), ``right`` (k, n_in)."""
        self._check_open()
        self._vectors[(key, int(group), "left")] = _frozen(left)
        self._vectors[(key, int(group), "right")] = _frozen(right)

    def mark_grad_only(self, keys: Iterable[str]) -> None:
        """These weights' modules hide A and Δ: only ``grad`` can exist for them."""
        self._check_open()
        self._grad_only.update(keys)

    def expect(self, keys: Iterable[str]) -> None:
        """Values will come from another thread: readers wait for :meth:`finish` (or :meth:`fail`).
        ``keys`` (in order) are the recorded weights, known before their values."""
        self._check_open()
        self._expected = list(keys)
        self._done = threading.Event()

    def warn(self, message: str) -> None:
        """A warning for the reader (issued when the values are first read, in that thread)."""
        self._warnings.append(message)

    def finish(self, order: Iterable[str]) -> None:
        """Close the snapshot; ``order`` ranks keys (``named_parameters`` order)."""
        self._check_open()
        rank = {k: i for i, k in enumerate(order)}
        self._keys = sorted({k for (k, _, _) in self._values}, key=lambda k: rank.get(k, len(rank)))
        self._finished = True
        if self._done is not None:
            self._done.set()

    def fail(self, error: BaseException) -> None:
        """The values could not be computed: every read raises ``error``."""
        self._error = error
        self._finished = True
        if self._done is not None:
            self._done.set()

    def _check_open(self) -> None:
        if self._finished:
            raise RuntimeError(f"snapshot of step {self.step} is finished and read-only")

    # ------------------------------------------------------------------ waiting
    @property
    def ready(self) -> bool:
        """True once the values are there (always for a snapshot filled in the step itself)."""
        return self._done is None or self._done.is_set()

    def wait(self, timeout: float | None = None) -> Snapshot:
        """Wait until the values are computed; raise the worker's error if that failed."""
        if self._done is not None and not self._done.wait(timeout):
            raise TimeoutError(f"spectra of step {self.step} not computed within {timeout} s")
        if self._error is not None:
            raise RuntimeError(f"autospec: computing the spectra of step {self.step} failed: {self._error}") from (
                self._error
            )
        while self._warnings:
            warnings.warn(self._warnings.pop(0), RuntimeWarning, stacklevel=3)
        return self

    # ------------------------------------------------------------------ reading
    @property
    def keys(self) -> list[str]:
        """Recorded weights, named and ordered as in ``model.named_parameters()``."""
        if self._expected is not None and not self.ready:
            return list(self._expected)
        self.wait()
        return list(self._keys)

    def _where(self, key: str, stat: str, group: object) -> SpectrumKey:
        self.wait()
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

    def error_bound(self, key: str, stat: str = "grad", group: int | None = None) -> np.ndarray:
        """Per value, an a-posteriori bound on its error: 0 for the exact routes; for top-k values
        found by iteration (``method=``) a residual bound r: a singular value of the matrix lies
        within r of the recorded one (and the recorded value is at most the true one of its rank)."""
        where = self._where(key, stat, group)
        return self._bounds.get(where, _frozen(np.zeros(len(self._values[where]))))

    def sharing_spectra(self, key: str, group: int | None = None) -> SharingSpectra:
        """σ of the gradient of ``key`` per share of its sharing dimension (``sharing=True``)."""
        self.wait()
        gid = check_group_arg(group)
        g = WHOLE if gid is None else gid
        if (key, g) not in self._sharing:
            raise KeyError(
                f"no sharing-dimension spectra of {key!r} (group {group}) at step {self.step}: record with "
                "sharing=True; they exist for adapter weights used more than once per sample (calls × positions > 1)"
            )
        return self._sharing[(key, g)]

    def sharing_items(self) -> list[tuple[tuple[str, int], SharingSpectra]]:
        self.wait()
        pos = {k: i for i, k in enumerate(self._keys)}
        return sorted(self._sharing.items(), key=lambda kv: (pos.get(kv[0][0], len(pos)), kv[0][1]))

    def sharing_layout(self) -> dict[str, dict[str, object]]:
        self.wait()
        return {k: dict(v) for k, v in self._sharing_layout.items()}

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
        self.wait()
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
        self.wait()
        pos = {k: i for i, k in enumerate(self._keys)}
        return sorted(self._vectors.items(), key=lambda kv: (pos[kv[0][0]], kv[0][1], kv[0][2]))

    def ranks(self) -> dict[SpectrumKey, int]:
        self.wait()
        return dict(self._ranks)

    def bounds(self) -> dict[SpectrumKey, np.ndarray]:
        """Error bounds of the values found by iteration (absent keys: exact, bound 0)."""
        self.wait()
        return dict(self._bounds)
