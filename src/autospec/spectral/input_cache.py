"""Reuse work on a layer input that did not change since the last step.

In full-batch training the first layer sees the same data every step. Its σ(A) is then known,
and with fewer rows than inputs (r < n_in) the QR factor of Aᵀ gives the gradient's spectrum
from a small problem: Aᵀ = Q R ⇒ Gᵀ = AᵀΔ = Q (RΔ) ⇒ σ(G) = σ(RΔ), an r × n_out matrix instead
of n_in × n_out — per group with that group's rows. Only data inputs (tensors that do not
require grad) are candidates; a match is checked by value, so in-place edits are seen.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .linalg import DTYPE, pad_values, stack_padded, svdvals


class InputCache:
    def __init__(self, x: torch.Tensor, groups: torch.Tensor | None):
        self.x = x.clone()
        self.groups = None if groups is None else groups.clone()
        self.act: tuple | None = None  # (whole σ, [group σ])
        self.factors: list[torch.Tensor] | None = None  # [R_1..R_K, R_whole] or [R_whole]

    def matches(self, x: torch.Tensor, groups: torch.Tensor | None) -> bool:
        if (self.groups is None) != (groups is None):
            return False
        if groups is not None and not torch.equal(self.groups, groups):
            return False
        return self.x.shape == x.shape and self.x.dtype == x.dtype and torch.equal(self.x, x)

    def build_factors(self, a_groups: Sequence[torch.Tensor]) -> None:
        """R factors of Aₖᵀ for the group row blocks (in the order Δ will use) and of the whole."""
        blocks = [a.to(DTYPE) for a in a_groups]
        mats = blocks + [torch.cat(blocks)] if len(blocks) > 1 else blocks
        self.factors = [torch.linalg.qr(m.T, mode="r")[1] for m in mats]

    def grad_spectra(self, d_groups: Sequence[torch.Tensor], n_in: int, n_out: int):
        """(σ(G), [σ(G_k)]) from the cached factors and this step's Δ blocks."""
        d = [x.to(DTYPE) for x in d_groups]
        ds = d + [torch.cat(d)] if len(d) > 1 else d
        prods = [r @ dk for r, dk in zip(self.factors, ds)]
        vals = pad_values(svdvals(stack_padded(prods)), min(n_in, n_out))
        if len(d) == 1:
            return vals[0], []
        return vals[-1], list(vals[:-1])
