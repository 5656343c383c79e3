"""Per-step, per-weight accumulators: reduce rows as they arrive, finish with one batched SVD.

Memory is bounded by the layer's shape, not by the number of rows or steps: raw rows are kept
only while they are the cheaper representation, then folded into R factors (for σ(A), σ(Δ)) or
into formed float64 gradients G_k (for σ(G)). Each accumulator lives for one recorded step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .linalg import DTYPE, fold_rows, pad_values, product_svdvals_qr, stack_padded, svdvals


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
        self._raw.append(rows.to(DTYPE))
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
        return torch.cat(parts) if len(parts) > 1 else parts[0]


class MatrixSpectra:
    """σ of a stacked-rows matrix (A or Δ), whole and per group."""

    def __init__(self, n_groups: int, ncols: int):
        self.groups = [RowFactor(ncols) for _ in range(n_groups)]

    def add(self, per_group: Sequence[torch.Tensor]) -> None:
        for acc, rows in zip(self.groups, per_group):
            acc.add(rows)

    def finalize(self) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(σ of the whole matrix, [σ of each group's rows]); lengths min(rows, ncols)."""
        mats = [g.matrix() for g in self.groups]
        ncols = self.groups[0].ncols
        total = sum(g.rows for g in self.groups)
        whole_m = torch.cat(mats) if len(mats) > 1 else mats[0]
        if len(mats) == 1:
            return svdvals(whole_m)[: min(total, ncols)], []
        batch = stack_padded([*mats, whole_m]) if total else None
        vals = svdvals(batch) if batch is not None else torch.zeros((len(mats) + 1, 0), dtype=DTYPE)
        per = [vals[i, : min(g.rows, ncols)] for i, g in enumerate(self.groups)]
        return vals[-1, : min(total, ncols)], per


class GradSpectra:
    """σ(G_k) with G_k = A_kᵀΔ_k per group and σ(G) with G = Σ_k G_k.

    Keeps raw rows while the total is below min(n_in, n_out) (then the QR-core route is cheaper
    and more accurate); beyond that, accumulates the formed float64 gradients.
    """

    def __init__(self, n_groups: int, n_in: int, n_out: int):
        self.k, self.n_in, self.n_out = n_groups, n_in, n_out
        self.cap = min(n_in, n_out)
        self.total = 0
        self._a: list[list[torch.Tensor]] = [[] for _ in range(n_groups)]
        self._d: list[list[torch.Tensor]] = [[] for _ in range(n_groups)]
        self._g: torch.Tensor | None = None  # (K, n_out, n_in)

    def add(self, a_groups: Sequence[torch.Tensor], d_groups: Sequence[torch.Tensor]) -> None:
        rows = sum(a.shape[0] for a in a_groups)
        self.total += rows
        if self._g is None and self.total < self.cap:
            for k in range(self.k):
                self._a[k].append(a_groups[k].to(DTYPE))
                self._d[k].append(d_groups[k].to(DTYPE))
            return
        self._to_formed(a_groups[0].device)
        for k in range(self.k):
            if a_groups[k].shape[0]:
                # the product in the layer's own precision (as autograd forms .grad), summed in float64
                a, d = _working(a_groups[k]), _working(d_groups[k])
                self._g[k] += (d.T @ a).to(DTYPE)

    def _to_formed(self, device) -> None:
        if self._g is None:
            self._g = torch.zeros((self.k, self.n_out, self.n_in), dtype=DTYPE, device=device)
            for k in range(self.k):
                if self._a[k]:
                    self._g[k] += torch.cat(self._d[k]).T @ torch.cat(self._a[k])
            self._a = self._d = None

    def add_group_grads(self, g: torch.Tensor) -> None:
        """Add already formed per-group gradients ``(K, n_out, n_in)``."""
        self._to_formed(g.device)
        self.total += self.cap  # formed from now on
        self._g += g.to(DTYPE)

    def finalize(self) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(σ(G), [σ(G_k)]), each of length min(n_in, n_out), zero-padded beyond the rank."""
        n = self.cap
        if self._g is not None:
            if self.k == 1:
                return pad_values(svdvals(self._g[0]), n), []
            vals = svdvals(torch.cat([self._g, self._g.sum(0, keepdim=True)]))
            return vals[-1], list(vals[:-1])
        a = [torch.cat(x) if x else torch.zeros((0, self.n_in), dtype=DTYPE) for x in self._a]
        d = [torch.cat(x) if x else torch.zeros((0, self.n_out), dtype=DTYPE) for x in self._d]
        if self.total == 0:
            z = torch.zeros(n, dtype=DTYPE)
            return z, [z.clone() for _ in range(self.k if self.k > 1 else 0)]
        if self.k == 1:
            return pad_values(product_svdvals_qr(a[0][None], d[0][None])[0], n), []
        a_all, d_all = torch.cat(a), torch.cat(d)
        vals = product_svdvals_qr(stack_padded([*a, a_all]), stack_padded([*d, d_all]))
        vals = pad_values(vals, n)
        return vals[-1], list(vals[:-1])


def _working(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def add_formed(acc: torch.Tensor | None, grads: torch.Tensor) -> torch.Tensor:
    """Sum formed gradients ``(B, n_out, n_in)`` of several calls, in float64."""
    grads = grads.to(DTYPE)
    return grads if acc is None else acc + grads


def formed_spectra(g: torch.Tensor, n_groups: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """σ for formed gradients stacked as ``[G_1..G_K, G]`` (or ``[G]`` without groups)."""
    vals = svdvals(g)
    if n_groups <= 1:
        return vals[0], []
    return vals[-1], list(vals[:-1])
