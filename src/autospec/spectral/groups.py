"""Group ids of one recorded step: validation and the per-group split of sample rows."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

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
    if g.numel() and int(g.min()) < 0:
        raise ValueError(f"group ids must be >= 0, got {int(g.min())}")
    return g.long()


def check_group_arg(group: object) -> int | None:
    """A snapshot's ``group=`` argument: None or an integer id (not a string, float or bool)."""
    if group is None:
        return None
    if isinstance(group, bool | np.bool_) or not isinstance(group, numbers.Integral):
        raise TypeError(f"group must be an integer group id or None, got {group!r} ({type(group).__name__})")
    return int(group)


class GroupIndex:
    """The step's groups: sorted ids, each sample's group position, and the batch order by group."""

    def __init__(self, groups: torch.Tensor | None):
        self.groups = groups
        if groups is None:
            self.ids: list[int] = []
            self.k = 1
            self.n = None
            return
        uniq, inverse = torch.unique(groups, return_inverse=True)
        self.ids = [int(v) for v in uniq.tolist()]
        self.k = len(self.ids)
        self.n = int(groups.numel())
        self.inverse = inverse  # sample -> position of its group in self.ids
        self.order = torch.argsort(inverse, stable=True)  # the batch's samples ordered by group
        self.counts = torch.bincount(inverse, minlength=self.k).tolist()

    @property
    def grouped(self) -> bool:
        return self.groups is not None

    def of_positions(self, sample_ids: torch.Tensor | None, device: torch.device) -> torch.Tensor:
        """Group position of each position along a sample axis (``sample_ids`` maps positions to samples)."""
        inv: torch.Tensor = self.inverse.to(device)
        return inv if sample_ids is None else inv[sample_ids.to(device)]

    def split(self, rows: torch.Tensor, start: int = 0) -> list[torch.Tensor]:
        """Per-group row blocks ``(n_k·R, width)`` of per-sample rows ``(n, R, width)`` (samples start..)."""
        width = rows.shape[-1]
        if self.groups is None:
            return [rows.reshape(-1, width)]
        if start == 0 and rows.shape[0] == self.n:
            order, counts = self.order.to(rows.device), self.counts
        else:
            idx = self.inverse[start : start + rows.shape[0]].to(rows.device)
            order = torch.argsort(idx, stable=True)
            counts = torch.bincount(idx, minlength=self.k).tolist()
        return [b.reshape(-1, width) for b in torch.split(rows[order], counts)]

    def blocks(self, device: torch.device) -> list[torch.Tensor | None]:
        """Sample indices of each group (``[None]``: all samples, no groups)."""
        if self.groups is None:
            return [None]
        return list(torch.split(self.order.to(device), self.counts))
