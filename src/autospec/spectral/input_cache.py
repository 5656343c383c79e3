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

from .accumulators import Spectrum
from .linalg import DTYPE, stack_padded, svdvals


class InputCache:
    def __init__(self, x: torch.Tensor, groups: torch.Tensor | None):
        self.x = x.clone()
        self.groups = None if groups is None else groups.clone()
        self.act: tuple[Spectrum, list[Spectrum]] | None = None  # (whole σ, [group σ])
        self.factors: list[torch.Tensor] | None = None  # [R_1..R_K] (groups only) then R_whole

    def matches(self, x: torch.Tensor, groups: torch.Tensor | None) -> bool:
        if (self.groups is None) != (groups is None):
            return False
        if groups is not None and (self.groups is None or not torch.equal(self.groups, groups)):
            return False
        return self.x.shape == x.shape and self.x.dtype == x.dtype and torch.equal(self.x, x)

    def build_factors(self, a_groups: Sequence[torch.Tensor]) -> None:
        """R factors of Aₖᵀ for the group row blocks (in the order Δ will use) and of the whole."""
        blocks = [a.to(DTYPE) for a in a_groups]
        mats = [*blocks, torch.cat(blocks)] if len(blocks) > 1 else blocks
        self.factors = [torch.linalg.qr(m.T, mode="r")[1] for m in mats]

    def grad_spectra(self, d_groups: Sequence[torch.Tensor], n_in: int, n_out: int) -> tuple[Spectrum, list[Spectrum]]:
        """(whole, [each group]) σ from the cached factors and this step's Δ blocks."""
        assert self.factors is not None
        shape = (n_out, n_in)
        d = [x.to(DTYPE) for x in d_groups]
        whole = svdvals(self.factors[-1] @ torch.cat(d)) if len(d) > 1 else svdvals(self.factors[0] @ d[0])
        if len(d) == 1:
            return Spectrum(whole, shape), []
        prods = [r @ dk for r, dk in zip(self.factors[:-1], d)]
        vals = svdvals(stack_padded(prods))  # padded to the largest group only
        per = [Spectrum(v[: min(p.shape)], shape) for v, p in zip(vals, prods)]
        return Spectrum(whole, shape), per
