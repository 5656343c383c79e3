"""Stage 2 of finishing a step: singular values of the reduced matrices, into the snapshot.

Matrices of the same shape are solved together — one batched SVD per shape across every weight
of the step (chunked to bound the stacked copy) — then each spectrum is cut at its numerical
rank (values at or below ``max(m, n) · eps · σ₁`` stored as exactly 0.0), truncated to ``top_k``
and stored. Singular vectors (``subspaces=k``) come from a full SVD of the same matrices; wide
gradients with ``method="iterative"``/``"auto"`` go through :func:`~.topk.top_singular`, warm-started
from the vectors the previous step left in ``warm``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .linalg import DTYPE, svdvals
from .snapshot import SharingSpectra, Snapshot
from .subspaces import normalise_signs
from .topk import top_singular
from .work import Mats, Target

_BATCH_ELEMENTS = 1 << 24  # float64 elements per stacked SVD batch (128 MiB)


@dataclass
class Solved:
    """One finished spectrum (cut values, rank, bounds) and where it goes."""

    target: Target
    values: np.ndarray
    rank: int
    bounds: np.ndarray | None = None
    vectors: tuple[np.ndarray, np.ndarray] | None = None


@dataclass
class SolveSettings:
    top_k: int | None
    tol: float
    layouts: dict[str, dict[str, Any]] = field(default_factory=dict)  # sharing layout per key


def cut(values: np.ndarray, length: int, shape: tuple[int, int], eps: float) -> tuple[np.ndarray, int]:
    """Descending σ padded/cut to ``length``; values at or below ``max(shape)·eps·σ₁`` set to 0.
    Returns (values, numerical rank); a spectrum with a NaN is NaN throughout (rank 0)."""
    v = np.zeros(length)
    n = min(length, len(values))
    v[:n] = values[:n]
    if not length:
        return v, 0
    if np.isnan(v[:n]).any():
        return np.full(length, np.nan), 0
    tol = max(shape) * eps * float(v[0])
    beyond = v <= tol
    v[beyond] = 0.0
    return v, int((~beyond).sum())


def _plain_values(batches: list[Mats]) -> dict[int, np.ndarray]:
    """σ of every matrix of the plain batches, one batched SVD per shape (by id of the batch)."""
    by_shape: dict[tuple[int, int], list[Mats]] = defaultdict(list)
    for b in batches:
        by_shape[tuple(b.m.shape[1:])].append(b)  # type: ignore[index]
    out: dict[int, np.ndarray] = {}
    for shape, group in by_shape.items():
        stacked = torch.cat([b.m.to(DTYPE) for b in group]) if len(group) > 1 else group[0].m.to(DTYPE)
        step = max(1, _BATCH_ELEMENTS // max(1, shape[0] * shape[1]))
        vals = torch.cat([svdvals(stacked[i : i + step]) for i in range(0, stacked.shape[0], step)]).numpy()
        at = 0
        for b in group:
            out[id(b)] = vals[at : at + b.m.shape[0]]
            at += b.m.shape[0]
    return out


def _vector_values(b: Mats, keep: int) -> list[tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]]:
    """σ and top singular vectors (left rows (k, rows), right rows (k, cols)) of each matrix."""
    out: list[tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]] = []
    for i in range(b.m.shape[0]):
        m = b.m[i].to(DTYPE)
        if not bool(torch.isfinite(m).all()):
            out.append((svdvals(m).numpy(), None))
            continue
        u, s, vh = torch.linalg.svd(m, full_matrices=False)
        left, right = u[:, :keep], vh[:keep].T
        if b.left is not None and b.right is not None:
            left, right = b.left[i].to(DTYPE) @ left, b.right[i].to(DTYPE) @ right
        out.append((s.numpy(), (left.T.numpy(), right.T.numpy())))
    return out


def solve(batches: Iterable[Mats], settings: SolveSettings, warm: dict[tuple[str, int], torch.Tensor]) -> list[Solved]:
    """Singular values (and vectors, bounds) of every target of the batches."""
    batches = list(batches)
    plain = [b for b in batches if not any(t.vectors or t.iterative for t in b.targets)]
    values = _plain_values(plain)
    solved: list[Solved] = []
    for b in batches:
        if id(b) in values:
            solved += _cut_batch(b, values[id(b)], settings.top_k)
            continue
        if any(t.iterative for t in b.targets):
            rows = [_iterate(b, i, settings, warm) for i in range(len(b.targets))]
        else:
            keep = max(t.vectors or 0 for t in b.targets)
            rows = [(v, None, vec) for v, vec in _vector_values(b, keep)]
        for i, (vals, bounds, vec) in enumerate(rows):
            solved.append(_finish(b.targets[i], vals[: b.valid[i]], bounds, vec, settings.top_k))
    return solved


def _cut_batch(b: Mats, vals: np.ndarray, top_k: int | None) -> list[Solved]:
    """:func:`cut` of a whole batch (the common case: no vectors, no iteration); vectorised for
    many targets (e.g. a group per subject), one by one for a few (fewer numpy calls)."""
    targets = b.targets
    if len(targets) < 16:
        return [_finish(t, vals[i, : b.valid[i]], None, None, top_k) for i, t in enumerate(targets)]
    lengths = np.array([t.length for t in targets])
    width = int(lengths.max(initial=0))
    v = np.zeros((len(targets), width))
    take = min(width, vals.shape[1])
    v[:, :take] = vals[:, :take]
    keep = np.minimum(np.array(b.valid), lengths)
    v[np.arange(width)[None, :] >= keep[:, None]] = 0.0
    nan = np.isnan(v).any(axis=1)
    tol = np.array([max(t.tol_shape) * t.eps for t in targets]) * np.nan_to_num(
        v[:, 0] if width else np.zeros(len(targets))
    )
    beyond = v <= tol[:, None]
    v[beyond] = 0.0
    ranks = (~beyond & (np.arange(width)[None, :] < lengths[:, None])).sum(axis=1)
    v[nan] = np.nan
    ranks[nan] = 0
    out = []
    for i, t in enumerate(targets):
        n = int(lengths[i]) if top_k is None else min(int(lengths[i]), top_k)
        row = v[i, :n]
        row.setflags(write=False)
        out.append(Solved(t, row, min(int(ranks[i]), n)))
    return out


def _iterate(
    b: Mats, i: int, settings: SolveSettings, warm: dict[tuple[str, int], torch.Tensor]
) -> tuple[np.ndarray, np.ndarray | None, tuple[np.ndarray, np.ndarray] | None]:
    t = b.targets[i]
    m = b.m[i].to(DTYPE)
    if not bool(torch.isfinite(m).all()) or settings.top_k is None:
        return svdvals(m).numpy(), None, None
    precision = torch.float64 if t.eps < 1e-10 else torch.float32  # the layer's own precision
    res = top_singular(m, settings.top_k, settings.tol, warm.get((t.key, t.group)), precision=precision)
    warm[(t.key, t.group)] = res.right
    vec = None
    if t.vectors:
        keep = min(t.vectors, settings.top_k)
        vec = (res.left[:, :keep].T.numpy(), res.right[:, :keep].T.numpy())
    return res.values.numpy(), res.bounds.numpy(), vec


def _finish(t: Target, vals: np.ndarray, bounds: Any, vec: Any, top_k: int | None) -> Solved:
    v, rank = cut(np.asarray(vals, dtype=np.float64), t.length, t.tol_shape, t.eps)
    b = None
    if bounds is not None:
        b = np.zeros(len(v))
        n = min(len(v), len(bounds))
        b[:n] = bounds[:n]
    if top_k is not None:
        v, rank = v[:top_k], min(rank, top_k)
        b = None if b is None else b[:top_k]
    if vec is not None and t.vectors:
        keep = min(rank, t.vectors)
        vec = normalise_signs(vec[0][:keep], vec[1][:keep])
    return Solved(t, v, rank, b, vec)


def store(snap: Snapshot, solved: list[Solved], layouts: dict[str, dict[str, Any]]) -> list[str]:
    """Put solved spectra into the snapshot; returns the keys whose spectra hold a NaN."""
    nonfinite: list[str] = []
    shares: dict[tuple[str, int], list[Solved]] = defaultdict(list)
    for s in solved:
        t = s.target
        if np.isnan(s.values).any():
            nonfinite.append(t.key)
        if t.share is not None:
            shares[(t.key, t.group)].append(s)
            continue
        snap.add_spectrum(t.key, t.stat, t.group, s.values, s.rank, error_bound=s.bounds)
        if s.vectors is not None:
            snap.add_vectors(t.key, t.group, *s.vectors)
    for (key, group), items in shares.items():
        items.sort(key=lambda s: s.target.share)  # type: ignore[arg-type, return-value]
        width = max(len(s.values) for s in items)
        vals = np.zeros((len(items), width))
        for j, s in enumerate(items):
            vals[j, : len(s.values)] = s.values
        spectra = SharingSpectra(
            np.array([s.target.share[0] for s in items], dtype=np.int64),  # type: ignore[index]
            np.array([s.target.share[1] for s in items], dtype=np.int64),  # type: ignore[index]
            vals,
            np.array([s.rank for s in items], dtype=np.int64),
        )
        snap.add_sharing(key, group, spectra, layouts.get(key, {}))
    return nonfinite
