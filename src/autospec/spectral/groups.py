"""Group ids of one recorded step: validation and the per-group split of sample rows."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import numpy as np
import torch


def validate_groups(groups: object) -> torch.Tensor | None:
    """Group ids as a 1-D int64 tensor; strings, floats and bools are refused, never converted."""
    if groups is None:
        return None
    if isinstance(groups, torch.Tensor):
        g = groups.detach()
    elif isinstance(groups, np.ndarray):
        if groups.dtype.kind not in "iu":
            raise TypeError(f"groups must hold integer group ids, got a numpy array of dtype {groups.dtype}")
        g = torch.from_numpy(np.ascontiguousarray(groups).astype(np.int64))
    elif isinstance(groups, Sequence) and not isinstance(groups, str | bytes):
        bad = [v for v in groups if isinstance(v, bool | np.bool_) or not isinstance(v, numbers.Integral)]
        if bad:
            raise TypeError(f"groups must hold integer group ids, got {bad[0]!r} ({type(bad[0]).__name__})")
        g = torch.tensor([int(v) for v in groups], dtype=torch.int64)
    else:
        raise TypeError(f"groups must be a tensor, array or list of integer ids, got {type(groups).__name__}")
    if g.dtype.is_floating_point or g.dtype.is_complex or g.dtype == torch.bool:
        raise TypeError(f"groups must hold integer group ids, got dtype {g.dtype}")
    if g.dim() != 1:
        raise ValueError(f"groups must be 1-D (one id per sample), got shape {tuple(g.shape)}")
    return g.long()  # ids >= 0 are checked when the groups are first laid out (GroupIndex), on the host


def check_group_arg(group: object) -> int | None:
    """A snapshot's ``group=`` argument: None or an integer id (not a string, float or bool)."""
    if group is None:
        return None
    if isinstance(group, bool | np.bool_) or not isinstance(group, numbers.Integral):
        raise TypeError(f"group must be an integer group id or None, got {group!r} ({type(group).__name__})")
    return int(group)


class Blocks(list):  # type: ignore[type-arg]
    """Sample indices of each group on a device (a list, as adapters receive it), with
    ``ranges``: per group ``(start, count)`` when its samples are one ascending run, else None —
    read on the host, so taking a group's samples needs no device synchronisation."""

    ranges: list[tuple[int, int] | None]


def _to(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host index tensor on ``device``; to CUDA through pinned memory without blocking (a copy
    from pageable memory would wait for the device's queue, a host synchronisation)."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


class _OnDevice:
    """A GroupIndex's index tensors on one device (built once, on first use there)."""

    def __init__(self, gi: GroupIndex, device: torch.device):
        self.inverse = _to(gi.inverse, device)
        self.slot = _to(gi.slot, device)  # sample -> row of the (K * rmax) padded layout
        self.pad = _to(gi.pad, device) if gi.pad.numel() else None  # rows of the layout no sample fills
        blocks = Blocks(torch.split(_to(gi.order, device), gi.counts))
        blocks.ranges = gi.ranges
        self.blocks = blocks


class GroupIndex:
    """The step's groups: sorted ids, counts, and how samples are laid out group by group.

    Built once per groups tensor (:class:`GroupCache`): a recorder recording the same groups
    every step computes ids, counts and index tensors once, not at every step.
    """

    def __init__(self, groups: torch.Tensor | None):
        self.groups = groups
        self._on: dict[torch.device, _OnDevice] = {}
        self._subs: dict[tuple[int, int], GroupIndex] = {}
        if groups is None:
            self.ids: list[int] = []
            self.k = 1
            self.n: int | None = None
            self.counts: list[int] = []
            self.rmax = 0
            return
        g = groups.detach().cpu()
        if g.numel() and int(g.min()) < 0:
            raise ValueError(f"group ids must be >= 0, got {int(g.min())}")
        uniq, inverse = torch.unique(g, return_inverse=True)
        self._layout([int(v) for v in uniq.tolist()], inverse)

    def _layout(self, ids: list[int], inverse: torch.Tensor) -> None:
        self.ids = ids
        self.k = len(self.ids)
        n = self.n = int(inverse.numel())
        self.inverse = inverse  # sample -> position of its group in self.ids
        self.order = torch.argsort(inverse, stable=True)  # the batch's samples ordered by group
        self.counts = torch.bincount(inverse, minlength=self.k).tolist()
        self.rmax = max(self.counts, default=0)
        starts = [0]
        for c in self.counts[:-1]:
            starts.append(starts[-1] + c)
        rank = torch.empty_like(self.order)
        rank[self.order] = torch.arange(n) - torch.tensor(starts, dtype=torch.long)[inverse[self.order]]
        self.slot = inverse * self.rmax + rank  # position of each sample in the padded layout
        filled = torch.zeros(self.k * self.rmax, dtype=torch.bool)
        filled[self.slot] = True
        self.pad = torch.nonzero(~filled).flatten()
        self.ranges: list[tuple[int, int] | None] = []
        for s, c in zip(starts, self.counts):
            idx = self.order[s : s + c]
            run = c > 0 and int(idx[-1]) - int(idx[0]) + 1 == c
            self.ranges.append((int(idx[0]), c) if run else None)

    @property
    def grouped(self) -> bool:
        return self.groups is not None

    def sub(self, start: int, stop: int) -> GroupIndex:
        """The layout of samples ``start..stop-1`` alone (same groups, some possibly empty)."""
        if self.groups is None:
            return self
        if (start, stop) not in self._subs:
            sub = GroupIndex.__new__(GroupIndex)
            sub.groups, sub._on, sub._subs = self.groups[start:stop], {}, {}
            sub._layout(self.ids, self.inverse[start:stop])
            self._subs[(start, stop)] = sub
        return self._subs[(start, stop)]

    def on(self, device: torch.device) -> _OnDevice:
        if device not in self._on:
            self._on[device] = _OnDevice(self, device)
        return self._on[device]

    def of_positions(self, sample_ids: torch.Tensor | None, device: torch.device) -> torch.Tensor:
        """Group position of each position along a sample axis (``sample_ids`` maps positions to samples)."""
        inv: torch.Tensor = self.on(device).inverse
        return inv if sample_ids is None else inv[sample_ids.to(device)]

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        """Per-sample rows ``(n, R, w)`` laid out by group: ``(K, rmax·R, w)``, groups padded with
        zero rows to the largest group (zero rows change neither products nor singular values).
        Always a new tensor (the caller may keep it past the step)."""
        n, r, w = rows.shape
        if self.groups is None:
            return rows.reshape(1, n * r, w).clone()
        on = self.on(rows.device)
        out = rows.new_empty((self.k * self.rmax, r, w))
        out.index_copy_(0, on.slot, rows)
        if on.pad is not None:
            out.index_fill_(0, on.pad, 0)
        return out.view(self.k, self.rmax * r, w)

    def blocks(self, device: torch.device) -> list[torch.Tensor | None]:
        """Sample indices of each group (``[None]``: all samples, no groups)."""
        if self.groups is None:
            return [None]
        return self.on(device).blocks


class GroupCache:
    """The GroupIndex of the last groups seen: reused while the same groups come back.

    Same groups: the same tensor (identity, version counter and data pointer) or, failing that,
    equal values (a comparison of ``N`` integers, on the host when the ids are).
    """

    def __init__(self) -> None:
        self._src: object = None
        self._sig: tuple[int, int] | None = None
        self._gi = GroupIndex(None)

    def get(self, groups: object, validate: Callable[[object], torch.Tensor | None]) -> GroupIndex:
        """The GroupIndex of ``groups`` (the user's argument; ``validate`` checks and converts it)."""
        if groups is None:
            return GroupIndex(None) if self._gi.grouped else self._gi
        if (
            isinstance(groups, torch.Tensor)
            and groups is self._src
            and self._sig == (groups._version, groups.data_ptr())
        ):
            return self._gi
        g = validate(groups)
        assert g is not None
        prev = self._gi.groups
        same = prev is not None and prev.shape == g.shape and torch.equal(prev, g.to(prev.device))
        if not same:
            self._gi = GroupIndex(g.cpu().clone())
        if isinstance(groups, torch.Tensor):
            self._src, self._sig = groups, (groups._version, groups.data_ptr())
        else:
            self._src, self._sig = None, None
        return self._gi
