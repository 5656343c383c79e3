"""Stage 1 of finishing a step: work items → small matrices with the recorded singular values.

Device-agnostic (runs where the work's tensors are: on the worker thread for CPU models, on the
device in the step itself for CUDA models, so that only small cores cross to the host). Routes,
all exact, float64 (docs/spectral_core.md):

* a group with r real rows < min(n_in, n_out): thin QR Aᵀ = Q_a R_a, Δᵀ = Q_d R_d,
  σ(ΔᵀA) = σ(R_d R_aᵀ), an r × r core (its Q factors give singular vectors when asked for);
* otherwise the group's formed gradient G_k = Δ_kᵀA_k (products in the layer's own precision,
  as autograd forms ``.grad``, summed in float64), reduced by :func:`~.linalg.svdvals`;
* the whole batch: the sum of the groups' formed gradients, or the QR core of all rows while
  they are fewer than min(n_in, n_out);
* σ(A), σ(Δ): the rows (or their R factors), whole and per group.
"""

from __future__ import annotations

import torch

from .linalg import DTYPE
from .work import WHOLE, CachedGradWork, GradWork, Mats, RowsWork, SharingWork, Target


def working(t: torch.Tensor) -> torch.Tensor:
    """The precision a layer's product is formed in (half precision is accumulated in float32)."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def form(d: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Batched Δᵀ A ``(B, n_out, n_in)`` of row blocks, in the layer's precision, as float64."""
    return torch.bmm(working(d).transpose(-1, -2), working(a)).to(DTYPE)


def qr_cores(a: torch.Tensor, d: torch.Tensor, vectors: bool) -> tuple[torch.Tensor, ...]:
    """Cores R_d R_aᵀ ``(B, r, r)`` of row blocks (B, r, n_in), (B, r, n_out); with ``vectors`` also
    the bases Q_d (B, n_out, r) and Q_a (B, n_in, r) so that ΔᵀA = Q_d · core · Q_aᵀ."""
    at, dt = a.to(DTYPE).transpose(-1, -2), d.to(DTYPE).transpose(-1, -2)
    if vectors:
        qa, ra = torch.linalg.qr(at)
        qd, rd = torch.linalg.qr(dt)
        return rd @ ra.transpose(-1, -2), qd, qa
    ra = torch.linalg.qr(at, mode="r")[1]
    rd = torch.linalg.qr(dt, mode="r")[1]
    return (rd @ ra.transpose(-1, -2),)


def _target(w: GradWork | CachedGradWork, group: int, **kw: object) -> Target:
    n_out, n_in = w.shape
    return Target(w.key, "grad", group, min(n_out, n_in), (n_out, n_in), w.eps, **kw)  # type: ignore[arg-type]


def _gid(w: GradWork | CachedGradWork, position: int) -> int:
    return w.ids[position] if w.ids else WHOLE


def grad_mats(w: GradWork) -> list[Mats]:
    """σ(G) whole and per group (see the module docstring for the routes)."""
    n_out, n_in = w.shape
    cap = min(n_out, n_in)
    k = len(w.counts)
    a = _joined(w.a)
    d = _joined(w.d)
    big = [g for g in range(k) if w.formed is not None or w.counts[g] >= cap]
    small = [g for g in range(k) if g not in big]
    out: list[Mats] = []
    formed = w.formed
    if big:
        if a is not None and d is not None:
            part = form(*_pick(big, k, d, a))
            formed = part if formed is None else formed + part  # formed given: every group is big
        assert formed is not None
        targets = [_target(w, _gid(w, g), vectors=w.vectors, iterative=w.iterative) for g in big]
        out.append(Mats(targets, formed, [cap] * len(big)))
    if small:
        assert a is not None and d is not None
        targets = [_target(w, _gid(w, g), vectors=w.vectors) for g in small]
        valid = [w.counts[g] for g in small]
        a_s, d_s = _pick(small, k, a, d)
        if len(w.a) == 1:  # one block: real rows first in each group, so the padding beyond goes
            a_s, d_s = a_s[:, : max(valid)], d_s[:, : max(valid)]
        out.append(_qr_mats(targets, a_s, d_s, valid, w.vectors))
    if not w.ids:  # no groups: the single group above is the whole batch
        return out
    total = sum(w.counts)
    whole = _target(w, WHOLE, vectors=w.vectors, iterative=w.iterative)
    if big or total >= cap:
        g_whole = formed.sum(0) if formed is not None else None
        if small:
            assert a is not None and d is not None
            rest = form_exact(*_pick(small, k, d, a)).sum(0)
            g_whole = rest if g_whole is None else g_whole + rest
        assert g_whole is not None
        out.append(Mats([whole], g_whole.unsqueeze(0), [cap]))
    else:
        assert a is not None and d is not None
        whole.iterative = False
        out.append(_qr_mats([whole], a.reshape(1, -1, n_in), d.reshape(1, -1, n_out), [total], w.vectors))
    return out


def _joined(blocks: list[torch.Tensor]) -> torch.Tensor | None:
    return None if not blocks else blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)


def _pick(groups: list[int], k: int, *blocks: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The row blocks of some groups (no copy when they are all of them)."""
    if len(groups) == k:
        return blocks
    idx = device_index(groups, blocks[0].device)
    return tuple(b.index_select(0, idx) for b in blocks)


def device_index(values: list[int], device: torch.device) -> torch.Tensor:
    """An index tensor on ``device`` without a host synchronisation (pinned, non-blocking copy on CUDA)."""
    idx = torch.tensor(values, dtype=torch.long)
    if device.type == "cuda":
        return idx.pin_memory().to(device, non_blocking=True)
    return idx.to(device)


def form_exact(d: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Δᵀ A of row blocks computed in float64 (a QR-route group's share of a formed whole)."""
    return torch.bmm(d.to(DTYPE).transpose(-1, -2), a.to(DTYPE))


def _qr_mats(targets: list[Target], a: torch.Tensor, d: torch.Tensor, rows: list[int], vectors: int | None) -> Mats:
    """QR cores of row blocks; only the first (real rows) singular values of each are meaningful."""
    cores = qr_cores(a, d, vectors is not None)
    if vectors is None:
        return Mats(targets, cores[0], rows)
    return Mats(targets, cores[0], rows, left=cores[1], right=cores[2])


def cached_grad_mats(w: CachedGradWork) -> list[Mats]:
    """σ(G_k) = σ(R_k Δ_k), σ(G) = σ(R Δ) from the unchanged input's factors."""
    n_out = w.shape[0]
    d = w.d.to(DTYPE)
    prods = torch.bmm(w.factors, d)  # (K, rmax, n_out)
    groups = [_target(w, _gid(w, g)) for g in range(len(w.counts))]
    out = [Mats(groups, prods, [min(c, n_out) for c in w.counts])]
    if w.ids:
        assert w.whole is not None
        prod = (w.whole @ d.reshape(-1, n_out)).unsqueeze(0)
        out.append(Mats([_target(w, WHOLE)], prod, [min(sum(w.counts), n_out)]))
    return out


def rows_mats(w: RowsWork) -> list[Mats]:
    """σ(A) or σ(Δ) of row blocks and/or R factors, whole and per group.

    Groups with at least twice as many rows as columns are first folded into their R factors
    (one batched QR); the whole batch then comes from the groups' stacked factors — the same
    singular values as all its rows, without a second pass over them."""
    blocks = [b.to(DTYPE) for b in w.blocks]
    rows = blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)  # (K, rows, width)
    width = w.width
    if rows.shape[1] >= 2 * width:
        rows = torch.linalg.qr(rows, mode="r")[1]  # (K, width, width)
    total = sum(w.counts)
    ids = w.ids or [WHOLE]
    targets = [Target(w.key, w.stat, g, min(c, width), (c, width), w.eps) for g, c in zip(ids, w.counts)]
    out = [Mats(targets, rows, [min(c, width) for c in w.counts])]
    if w.ids:
        whole = Target(w.key, w.stat, WHOLE, min(total, width), (total, width), w.eps)
        out.append(Mats([whole], rows.reshape(1, -1, width), [min(total, width)]))
    elif len(w.counts) != 1:
        raise AssertionError("ungrouped rows work has one block")
    return out


def sharing_mats(w: SharingWork) -> list[Mats]:
    """σ(G_s) per share, per group and whole (formed per share, or QR cores of the share's rows)."""
    n_out, n_in = w.shape
    k = len(w.counts)
    shares = len(w.calls) * w.positions
    total = sum(w.counts)
    ids = w.ids or [WHOLE]
    out: list[Mats] = []

    def targets(group: int, rows: int) -> list[Target]:
        length = min(n_out, n_in, rows)
        return [Target(w.key, "grad", group, length, (n_out, n_in), w.eps, share=_share(w, j)) for j in range(shares)]

    if w.formed is not None:  # (S, K, n_out, n_in)
        full = [min(n_out, n_in)] * shares
        out += [Mats(targets(ids[g], w.counts[g]), w.formed[:, g], full) for g in range(k)]
        if w.ids:
            out.append(Mats(targets(WHOLE, total), w.formed.sum(1), full))
        return out
    assert w.a is not None and w.d is not None  # (K, rmax, S, n)
    a = w.a.permute(2, 0, 1, 3)  # (S, K, rmax, n_in)
    d = w.d.permute(2, 0, 1, 3)
    for g in range(k):
        core = qr_cores(a[:, g], d[:, g], False)[0]
        out.append(Mats(targets(ids[g], w.counts[g]), core, [min(w.counts[g], n_out, n_in)] * shares))
    if w.ids:
        rows = a.shape[1] * a.shape[2]
        core = qr_cores(a.reshape(shares, rows, n_in), d.reshape(shares, rows, n_out), False)[0]
        out.append(Mats(targets(WHOLE, total), core, [min(total, n_out, n_in)] * shares))
    return out


def _share(w: SharingWork, j: int) -> tuple[int, int]:
    return w.calls[j // w.positions], j % w.positions
