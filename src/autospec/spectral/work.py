"""What one recorded step hands over to be finished: per weight, its reduced contributions.

The step's hooks and its exit (:mod:`.step`) turn every weight's rows of A and Δ into one of the
work items below — tensors the recorder owns (gathered copies, formed products, R factors), never
views of the model's activations — so they can be finished later on another thread while training
goes on. :mod:`.reduce` turns work items into small matrices whose singular values are the
recorded ones; :mod:`.solve` takes those singular values, batched by shape across weights.

Row blocks are laid out group by group, ``(K, rows, width)``, each group zero-padded to the
largest (zero rows change neither products nor singular values); ``counts`` gives each group's
real rows. Without groups K = 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

WHOLE = -1  # group id of the whole batch


@dataclass
class Target:
    """Where one spectrum goes and how it is cut: ``length`` values kept (padded with zeros),
    rank tolerance ``max(tol_shape) · eps · σ₁``."""

    key: str
    stat: str  # grad | act | delta
    group: int  # group id, or WHOLE
    length: int
    tol_shape: tuple[int, int]
    eps: float
    vectors: int | None = None  # keep the top singular vectors (grad only)
    iterative: bool = False  # top-k by subspace iteration (grad only, formed matrices)
    share: tuple[int, int] | None = None  # (call, position) for sharing-dimension spectra


@dataclass
class Mats:
    """A batch of matrices ``m`` (B, r, c), float64, with σ(m[i]) = σ of ``targets[i]``'s matrix.

    Only the first ``valid[i]`` singular values of ``m[i]`` are meaningful (the rest are
    structural zeros of the padding). ``left``/``right`` (B, rows, r) / (B, cols, c): orthonormal
    bases with target = left · m · rightᵀ, present when singular vectors are wanted.
    """

    targets: list[Target]
    m: torch.Tensor
    valid: list[int]
    left: torch.Tensor | None = None
    right: torch.Tensor | None = None


@dataclass
class GradWork:
    """σ(G) of one weight, whole and per group: formed parts and/or raw row blocks.

    ``formed`` (K, n_out, n_in) float64: contributions already formed (convolution group
    gradients, generic replays, products formed during the step); every group is then finished
    from its formed gradient. ``a``/``d``: row blocks (K, rows, n_in) / (K, rows, n_out) in the
    layer's dtype; a group with fewer real rows than min(n_in, n_out) takes the QR-core route.
    """

    key: str
    shape: tuple[int, int]  # (n_out, n_in)
    eps: float
    ids: list[int]  # group ids ([] without groups)
    counts: list[int]  # real rows per group over all row blocks
    formed: torch.Tensor | None = None
    a: list[torch.Tensor] = field(default_factory=list)
    d: list[torch.Tensor] = field(default_factory=list)
    vectors: int | None = None
    iterative: bool = False


@dataclass
class CachedGradWork:
    """σ(G) from an unchanged input's R factors: σ(G_k) = σ(R_k Δ_k) (see :mod:`.input_cache`).

    ``factors`` (K, rmax, rmax): R of each group's Aᵀ; ``whole`` (K·rmax, K·rmax): R of the whole
    batch's Aᵀ in the same row order; ``d`` (K, rmax, n_out) the gathered Δ.
    """

    key: str
    shape: tuple[int, int]
    eps: float
    ids: list[int]
    counts: list[int]
    factors: torch.Tensor
    whole: torch.Tensor | None
    d: torch.Tensor


@dataclass
class RowsWork:
    """σ(A) or σ(Δ), whole and per group, from row blocks (K, rows, width) and/or folded R
    factors (K, width, width) float64 with the same singular values."""

    key: str
    stat: str
    width: int
    eps: float
    ids: list[int]
    counts: list[int]
    blocks: list[torch.Tensor] = field(default_factory=list)
    cache: object = None  # an InputCache that keeps the finished σ(A) for later steps


@dataclass
class ReusedWork:
    """σ(A) of an unchanged input: the finished spectra of an earlier step (see :mod:`.input_cache`)."""

    key: str
    stat: str
    source: object  # the InputCache holding ``act`` once the earlier step is finished


@dataclass
class SharingWork:
    """σ(G_s) for the shares s of some calls of one weight (``sharing=True``).

    ``formed`` (S, K, n_out, n_in) float64 or ``a``/``d`` (K, rmax, S, n) row blocks; shares are
    call-major: share j is (calls[j // positions], j % positions).
    """

    key: str
    shape: tuple[int, int]
    eps: float
    ids: list[int]
    counts: list[int]
    calls: list[int]
    positions: int
    formed: torch.Tensor | None = None
    a: torch.Tensor | None = None
    d: torch.Tensor | None = None
    layout: dict[str, object] = field(default_factory=dict)  # calls, positions, position shape


Work = GradWork | CachedGradWork | RowsWork | ReusedWork | SharingWork


#: the fields holding tensors made for the step (an input cache's factors are counted by no step)
_HELD = {
    "GradWork": ("formed", "a", "d"),
    "CachedGradWork": ("d",),
    "RowsWork": ("blocks",),
    "ReusedWork": (),
    "SharingWork": ("formed", "a", "d"),
    "Mats": ("m", "left", "right"),
}


def nbytes(obj: object) -> int:
    """Bytes of the tensors a work item (or batch of matrices) holds, for the queue's memory cap."""
    total = 0
    for name in _HELD[type(obj).__name__]:
        value = getattr(obj, name)
        for t in value if isinstance(value, list) else (value,):
            if t is not None:
                total += t.numel() * t.element_size()
    return total


def to_host(obj: object, pinned: bool) -> None:
    """Move a work item's tensors to the host in place (non-blocking into pinned memory on CUDA)."""
    for name, value in vars(obj).items():
        if isinstance(value, torch.Tensor):
            setattr(obj, name, _host(value, pinned))
        elif isinstance(value, list) and value and isinstance(value[0], torch.Tensor):
            setattr(obj, name, [_host(t, pinned) for t in value])


def _host(t: torch.Tensor, pinned: bool) -> torch.Tensor:
    if t.device.type == "cpu":
        return t
    out = torch.empty(t.shape, dtype=t.dtype, pin_memory=pinned)
    out.copy_(t, non_blocking=pinned)
    return out
