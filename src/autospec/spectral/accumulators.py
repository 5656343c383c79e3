"""Per-step, per-weight accumulators: reduce rows as they arrive, finish with batched SVDs.

Memory is bounded by the layer's shape and the group sizes, never by N·K: raw rows are kept only
while they are the cheaper representation, then folded into R factors (σ(A), σ(Δ)) or into a
formed float64 gradient (σ(G)) — decided per group, so many small groups stay small. The whole
batch is finished on its own and groups are padded only to the largest group, never to N.
Each accumulator lives for one recorded step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple, TypeVar

import torch

from .linalg import DTYPE, fold_rows, product_svd_qr, product_svdvals_qr, stack_padded, svd_top, svdvals

_SVD_BATCH = 32  # matrices per batched SVD call (bounds the transient copy of a stack)
T = TypeVar("T")


class Spectrum(NamedTuple):
    """σ (descending, float64, unpadded) of one matrix, and optionally its top singular vectors."""

    values: torch.Tensor
    shape: tuple[int, int]  # (rows, cols) of the matrix, for the rank tolerance
    left: torch.Tensor | None = None  # (k, rows): output-space vectors of G (weight layout)
    right: torch.Tensor | None = None  # (k, cols): input-space vectors


class RowFactor:
    """A matrix given by stacked rows, kept as (R factor + recent raw rows) with equal σ."""

    def __init__(self, ncols: int):
        self.ncols = ncols
        self.rows = 0
        self._factor: torch.Tensor | None = None
        self._raw: list[torch.Tensor] = []
        self._nraw = 0
        # fold in large batches: fewer LAPACK calls for layers called once per time step
        self._cap = max(4 * ncols, 2048)

    def add(self, rows: torch.Tensor) -> None:
        if rows.shape[0] == 0:
            return
        self._raw.append(rows.clone())  # the layer's dtype: exact, and half the memory of float64
        self._nraw += rows.shape[0]
        self.rows += rows.shape[0]
        if self._nraw >= self._cap:
            self._factor = fold_rows(self._factor, torch.cat(self._raw))
            self._raw, self._nraw = [], 0

    def matrix(self) -> torch.Tensor:
        """A matrix with the same singular values (at most max(rows, 2·ncols) rows)."""
        parts = ([] if self._factor is None else [self._factor]) + self._raw
        if not parts:
            return torch.zeros((0, self.ncols), dtype=DTYPE)
        return torch.cat([p.to(DTYPE) for p in parts])


class MatrixSpectra:
    """σ of a stacked-rows matrix (A or Δ), whole and per group."""

    def __init__(self, n_groups: int, ncols: int):
        self.groups = [RowFactor(ncols) for _ in range(n_groups)]

    def add(self, per_group: Sequence[torch.Tensor]) -> None:
        for acc, rows in zip(self.groups, per_group):
            acc.add(rows)

    def finalize(self) -> tuple[Spectrum, list[Spectrum]]:
        """(whole, [each group]); each of length min(rows, ncols)."""
        mats = [g.matrix() for g in self.groups]
        ncols = self.groups[0].ncols
        total = sum(g.rows for g in self.groups)
        whole = Spectrum(svdvals(torch.cat(mats) if len(mats) > 1 else mats[0])[: min(total, ncols)], (total, ncols))
        if len(mats) == 1:
            return whole, []
        vals = _batched(svdvals, (stack_padded(c) for c in _chunks(mats)))
        per = [Spectrum(v[: min(g.rows, ncols)], (g.rows, ncols)) for v, g in zip(vals, self.groups)]
        return whole, per


class _Part:
    """One group's share of G = ΔᵀA: raw float64 rows while fewer than ``cap``, else formed."""

    def __init__(self, shape: tuple[int, int]):
        self.shape = shape  # (n_out, n_in)
        self.cap = min(shape)
        self.rows = 0
        self.a: list[torch.Tensor] = []
        self.d: list[torch.Tensor] = []
        self.formed: torch.Tensor | None = None

    def add_rows(self, a: torch.Tensor, d: torch.Tensor) -> None:
        if a.shape[0] == 0:
            return
        self.rows += a.shape[0]
        if self.formed is None and self.rows < self.cap:
            # kept in the layer's dtype (exact, half the memory of float64); upcast when used
            self.a.append(a.clone())
            self.d.append(d.clone())
            return
        self._form(a.device)
        assert self.formed is not None
        # the product in the layer's own precision (as autograd forms .grad), summed in float64
        self.formed += (_working(d).T @ _working(a)).to(DTYPE)

    def add_formed(self, g: torch.Tensor) -> None:
        self._form(g.device)
        assert self.formed is not None
        self.formed += g.to(DTYPE)

    def as_formed(self, device: torch.device) -> torch.Tensor:
        out = torch.zeros(self.shape, dtype=DTYPE, device=device) if self.formed is None else self.formed.clone()
        if self.a:
            out += _cat64(self.d).T @ _cat64(self.a)
        return out

    def _form(self, device: torch.device) -> None:
        if self.formed is None:
            self.formed = torch.zeros(self.shape, dtype=DTYPE, device=device)
        if self.a:
            self.formed += _cat64(self.d).T @ _cat64(self.a)
            self.a, self.d = [], []


class GradSpectra:
    """σ(G_k) with G_k = Δ_kᵀA_k per group and σ(G) with G = Σ_k G_k (weight layout n_out × n_in).

    Each group keeps raw rows while it has fewer than min(n_in, n_out) (the QR-core route is then
    cheaper and more accurate) and a formed float64 gradient beyond; the whole batch likewise.
    Formed contributions (conv group gradients, generic replays, tied uses) force the formed route.
    """

    def __init__(self, n_groups: int, n_in: int, n_out: int):
        self.k, self.n_in, self.n_out = n_groups, n_in, n_out
        self.cap = min(n_in, n_out)
        self.parts = [_Part((n_out, n_in)) for _ in range(n_groups)]
        self.total = 0
        self.whole_formed: torch.Tensor | None = None  # only with groups (else the part is the whole)

    def add(self, a_groups: Sequence[torch.Tensor], d_groups: Sequence[torch.Tensor]) -> None:
        for part, a, d in zip(self.parts, a_groups, d_groups):
            part.add_rows(a, d)
        rows = sum(a.shape[0] for a in a_groups)
        self.total += rows
        if self.k == 1 or self.total < self.cap:
            return
        if self.whole_formed is None:
            self._form_whole(a_groups[0].device)
        else:
            d, a = torch.cat(list(d_groups)), torch.cat(list(a_groups))
            self.whole_formed += (_working(d).T @ _working(a)).to(DTYPE)

    def add_group_grads(self, g: torch.Tensor) -> None:
        """Add formed per-group gradients ``(K, n_out, n_in)`` (one per group, in group order)."""
        for part, gk in zip(self.parts, g):
            part.add_formed(gk)
        self.total += self.cap
        if self.k == 1:
            return
        if self.whole_formed is None:
            self._form_whole(g.device)
        else:
            self.whole_formed += g.to(DTYPE).sum(0)

    def _form_whole(self, device: torch.device) -> None:
        self.whole_formed = torch.zeros((self.n_out, self.n_in), dtype=DTYPE, device=device)
        for part in self.parts:
            self.whole_formed += part.as_formed(device)

    def finalize(self, vectors: int | None = None) -> tuple[Spectrum, list[Spectrum]]:
        """(whole, [each group]) — σ unpadded; top-``vectors`` singular vectors on request."""
        shape = (self.n_out, self.n_in)
        groups = _finish_parts(self.parts, shape, vectors)
        if self.k == 1:
            return groups[0], []
        if self.whole_formed is not None:
            whole = _formed_spectra([self.whole_formed], shape, vectors)[0]
        else:  # every group is still in raw rows: the whole is their union
            union = _Part(shape)
            for p in self.parts:
                union.a += p.a
                union.d += p.d
                union.rows += p.rows
            whole = _finish_parts([union], shape, vectors)[0]
        return whole, groups


def _finish_parts(parts: Sequence[_Part], shape: tuple[int, int], vectors: int | None) -> list[Spectrum]:
    out: list[Spectrum | None] = [None] * len(parts)
    formed = [i for i, p in enumerate(parts) if p.formed is not None]
    mats = [p.formed for p in parts if p.formed is not None]
    for i, s in zip(formed, _formed_spectra(mats, shape, vectors)):
        out[i] = s
    live = [i for i, p in enumerate(parts) if p.formed is None and p.a]
    for i, p in enumerate(parts):
        if p.formed is None and not p.a:
            out[i] = Spectrum(torch.zeros(0, dtype=DTYPE), shape)
    if vectors is not None:
        for i in live:
            out[i] = Spectrum(*_rows_triplets(_cat64(parts[i].a), _cat64(parts[i].d), shape, vectors))
        return [s for s in out if s is not None]
    for chunk in _chunks(live):  # float64 copies of one chunk of groups at a time, padded to its largest
        a = stack_padded([torch.cat(parts[i].a) for i in chunk])
        d = stack_padded([torch.cat(parts[i].d) for i in chunk])
        for i, v in zip(chunk, product_svdvals_qr(a, d)):
            out[i] = Spectrum(v[: parts[i].rows], shape)
    return [s for s in out if s is not None]


def _rows_triplets(
    a: torch.Tensor, d: torch.Tensor, shape: tuple[int, int], k: int
) -> tuple[torch.Tensor, tuple[int, int], torch.Tensor | None, torch.Tensor | None]:
    if a.shape[0] == 0:
        return torch.zeros(0, dtype=DTYPE), shape, None, None
    s, left, right = product_svd_qr(a, d, k)
    return s, shape, left, right


def _formed_spectra(mats: Sequence[torch.Tensor], shape: tuple[int, int], vectors: int | None) -> list[Spectrum]:
    if vectors is not None:
        out = []
        for m in mats:
            s, left, right = _top(m, vectors)
            out.append(Spectrum(s, shape, left, right))
        return out
    vals = _batched(svdvals, (torch.stack(list(c)) for c in _chunks(mats)))
    return [Spectrum(v, shape) for v in vals]


def _top(m: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    if not bool(torch.isfinite(m).all()):
        return svdvals(m), None, None
    s, left, right = svd_top(m, k)
    return s, left, right


def _chunks(items: Sequence[T]) -> list[list[T]]:
    seq = list(items)
    return [seq[i : i + _SVD_BATCH] for i in range(0, len(seq), _SVD_BATCH)]


def _batched(fn: Callable[[T], torch.Tensor], batches: Iterable[T]) -> list[torch.Tensor]:
    """``fn`` over lazily built batches (one stacked copy alive at a time), rows concatenated."""
    out: list[torch.Tensor] = []
    for b in batches:
        out.extend(fn(b))
    return out


def _cat64(rows: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([r.to(DTYPE) for r in rows])


def _working(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def add_formed(acc: torch.Tensor | None, grads: torch.Tensor) -> torch.Tensor:
    """Sum formed gradients ``(B, n_out, n_in)`` of several calls, in float64."""
    grads = grads.to(DTYPE)
    return grads if acc is None else acc + grads
