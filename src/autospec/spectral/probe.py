"""Sample coupling, detected not assumed: one-off probes on the step's own autograd graph.

Per-group gradients are defined when sample i's loss depends on no other sample's activations at
any recorded layer: then G_g = A_gᵀΔ_g equals the gradient of Σ_{i∈g} ℓ_i / N (the oracle). Two
probes check this at the first grouped step (and again whenever a module's training flag, the
recorded weights or the grouping change), by module type never:

* **model probe** — at the end of each outermost module call, a cotangent on the outputs of the
  samples in a set S is pulled back to the output of every recorded call
  (``torch.autograd.grad`` on the live graph, no second forward); any non-zero adjoint at a
  sample outside S means the forward couples samples (BatchNorm using batch statistics in any
  mode, ``h - h.mean(0)``, attention across the batch, a wrong sample axis...). S runs over the
  2·⌈log₂ N⌉ sets "bit b of the sample index is 1" and their complements, so every ordered pair
  of samples is separated by some probe. First order is the exact criterion here: the oracle
  differs from the recorder exactly when such a Jacobian block is non-zero.
* **loss probe** — when the loss goes through ``Tensor.backward``, a Hessian-vector product of
  the loss with respect to the model outputs, with the vector on S: a non-zero entry outside S
  means the loss couples samples (InfoNCE, batch-centred targets). A coupling whose second
  derivative vanishes (piecewise-linear in the outputs) cannot be seen this way; the docs say so.

Both run under :func:`~autospec.spectral.replay.internal_scope`: the recorders' own hooks ignore
them. Tensor hooks, full backward hooks and ``retain_grad()`` of tensors between the recorded
layers and the outputs do see the probe's backward passes (documented side effect); pass
``assume_independent=True`` to skip the probes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .registry import SampleLayout
from .replay import internal_scope

PROBE_ELEMENTS = 1 << 24  # elements of stacked cotangents/adjoints per vmapped probe (64 MiB in float32)


@dataclass
class Probed:
    """A tensor with a sample layout, named for messages."""

    name: str  # module name ("" = the model)
    tensor: torch.Tensor
    layout: SampleLayout
    kind: str = ""  # module type, for messages

    @property
    def label(self) -> str:
        where = f"'{self.name}'" if self.name else "the model"
        return f"{where} ({self.kind})" if self.kind else where


def sample_sets(n: int) -> list[torch.Tensor]:
    """Boolean masks over n samples: bit b set, and its complement, for each bit of n - 1."""
    if n < 2:
        return []
    idx = torch.arange(n)
    out = []
    for b in range(math.ceil(math.log2(n))):
        bit = ((idx >> b) & 1).bool()
        out += [bit, ~bit]
    return out


def _outside(layout: SampleLayout, size: int, sets: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(B, size): True where a position's sample is NOT in probe set b (``sets``: (B, n) bool)."""
    ids = torch.arange(size) if layout.ids is None else layout.ids.cpu()
    return (~sets[:, ids]).to(device)


def _masked_random(t: Probed, sets: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """(B, *shape): random cotangents kept only at the positions of the samples in each set."""
    x = t.tensor
    axis = t.layout.axis % x.dim()
    keep = (~_outside(t.layout, x.shape[axis], sets, x.device)).to(x.dtype)  # (B, P)
    shape = [sets.shape[0]] + [1] * x.dim()
    shape[axis + 1] = x.shape[axis]
    noise = torch.randn((sets.shape[0], *x.shape), generator=gen, dtype=torch.float32).to(x.device, x.dtype)
    return noise * keep.reshape(shape)


def _leak_rows(adj: torch.Tensor, layout: SampleLayout, sets: torch.Tensor) -> torch.Tensor:
    """(B,) bool: probe b put non-zero adjoint on a position of a sample outside set b."""
    b = adj.shape[0]
    axis = layout.axis % (adj.dim() - 1)
    moved = adj.detach().movedim(axis + 1, 1)
    nonzero = (moved != 0).reshape(b, moved.shape[1], -1).any(2)  # (B, P)
    return (nonzero & _outside(layout, moved.shape[1], sets, adj.device)).any(1)


class Inconclusive(Exception):
    """The probe saw non-finite values: it cannot tell; the next recorded step probes again."""


def pullback(
    outputs: Sequence[torch.Tensor], inputs: Sequence[torch.Tensor], cotangents: Sequence[torch.Tensor]
) -> list[torch.Tensor | None]:
    """Stacked ``autograd.grad(outputs, inputs, c[b])`` over the leading axis b of each cotangent:
    one vmapped backward when every kernel has a batching rule, else one backward per b."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # vmap fallback performance notes
            grads = torch.autograd.grad(
                list(outputs), list(inputs), list(cotangents), retain_graph=True, allow_unused=True,
                is_grads_batched=True,
            )  # fmt: skip
        return list(grads)
    except RuntimeError:
        rows = [
            torch.autograd.grad(
                list(outputs), list(inputs), [c[b] for c in cotangents], retain_graph=True, allow_unused=True
            )
            for b in range(cotangents[0].shape[0])
        ]
        return [None if rows[0][j] is None else torch.stack([r[j] for r in rows]) for j in range(len(inputs))]


def set_chunks(n: int, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The (B, n) probe sets in chunks whose stacked cotangents and adjoints stay within
    :data:`PROBE_ELEMENTS` elements (the probe's memory is that of a few activations)."""
    sets = torch.stack(sample_sets(n))
    per_set = max(1, sum(t.numel() for t in tensors))
    size = max(1, PROBE_ELEMENTS // per_set)
    return list(torch.split(sets, size))


def _leaking(outs: Sequence[Probed], zs: Sequence[Probed], n: int) -> tuple[list[bool], str | None]:
    """Which of ``zs`` receive adjoint from outputs of other samples; and an axis hint if one fits."""
    gen = torch.Generator().manual_seed(0)
    flags = [False] * len(zs)
    hint = None
    with internal_scope():
        for sets in set_chunks(n, [t.tensor for t in (*outs, *zs)]):
            cots = [_masked_random(o, sets, gen) for o in outs]
            adjs = pullback([o.tensor for o in outs], [z.tensor for z in zs], cots)
            for j, (z, a) in enumerate(zip(zs, adjs)):
                if a is None:
                    continue
                if not bool(torch.isfinite(a).all()):
                    raise Inconclusive
                if bool(_leak_rows(a, z.layout, sets).any()):
                    flags[j] = True
                    hint = hint or _axis_hint(z, a, sets, n)
    return flags, hint


def model_probe(outputs: Sequence[Probed], inner: Sequence[Probed], n: int, calls: Sequence[Probed] = ()) -> str | None:
    """None if no recorded call's output gets adjoint from other samples' outputs, else the cause.

    ``calls``: the outputs of every module call in the step, in completion order; used only to
    name where the coupling happens when there is one.
    """
    outs = [o for o in outputs if o.tensor.requires_grad]
    zs = [z for z in inner if z.tensor.requires_grad]
    if not outs or not zs:
        return None
    if not all(bool(torch.isfinite(o.tensor).all()) for o in outs):
        raise Inconclusive
    flags, hint = _leaking(outs, zs, n)
    if not any(flags):
        return None
    if hint:
        return hint
    names = ", ".join(dict.fromkeys(z.label for z, f in zip(zs, flags) if f))
    return (
        f"the forward couples samples: the output of sample i depends on other samples' activations at {names}"
        f"{_culprit(outs, calls, n)} (batch statistics such as BatchNorm in training mode or with "
        "track_running_stats=False, a mean over the batch, attention across samples...), so per-group "
        "gradients are not defined; record without groups, or pass assume_independent=True if you know better"
    )


def _culprit(outs: Sequence[Probed], calls: Sequence[Probed], n: int) -> str:
    """'; it happens between the output of A and that of B (Type)', from every call's output."""
    cands = [c for c in calls if c.tensor.requires_grad]
    if not cands:
        return ""
    flags, _ = _leaking(outs, cands, n)
    if not any(flags) or all(flags):
        return ""
    last = max(i for i, f in enumerate(flags) if f)
    after = next((c for c, f in zip(cands[last + 1 :], flags[last + 1 :]) if not f), None)
    if after is None:
        return ""
    return f"; the coupling lies between the output of {cands[last].label} and the output of {after.label}"


def _axis_hint(z: Probed, adj: torch.Tensor, sets: torch.Tensor, n: int) -> str | None:
    """If the adjoint separates samples along another axis of size n, the sample axis is wrong."""
    if z.layout.ids is not None:
        return None
    here = z.layout.axis % (adj.dim() - 1)
    for d in range(adj.dim() - 1):
        if d != here and adj.shape[d + 1] == n and not bool(_leak_rows(adj, SampleLayout(d), sets).any()):
            return (
                f"{z.label}: its output keeps samples on dim {d}, not dim {here} as assumed "
                f"(sequence-first layout?); pass batch_dim={{'{z.name}': {d}}}"
            )
    return None


def _hessian_leak(
    live: Sequence[tuple[Probed, torch.Tensor]], hvs: Sequence[torch.Tensor | None], sets: torch.Tensor
) -> str | None:
    for (o, _), h in zip(live, hvs):
        if h is None:
            continue
        if not bool(torch.isfinite(h).all()):
            raise Inconclusive
        if bool(_leak_rows(h, o.layout, sets).any()):
            return o.label
    return None


def loss_probe(loss: torch.Tensor, gradient: torch.Tensor | None, outputs: Sequence[Probed], n: int) -> str | None:
    """None if the loss's Hessian with respect to the outputs has no cross-sample block."""
    outs = [o for o in outputs if o.tensor.requires_grad]
    if not outs:
        return None
    if not bool(torch.isfinite(loss).all()):
        raise Inconclusive
    with internal_scope():
        first = torch.autograd.grad(
            [loss], [o.tensor for o in outs], None if gradient is None else [gradient],
            create_graph=True, retain_graph=True, allow_unused=True,
        )  # fmt: skip
        live = [(o, g) for o, g in zip(outs, first) if g is not None and g.requires_grad]
        if not live:
            return None  # linear in the outputs: no coupling through the loss
        gen = torch.Generator().manual_seed(1)
        for sets in set_chunks(n, [o.tensor for o, _ in live] * 2):
            vs = [_masked_random(o, sets, gen) for o, _ in live]
            hvs = pullback([g for _, g in live], [o.tensor for o, _ in live], vs)
            leak = _hessian_leak(live, hvs, sets)
            if leak is not None:
                return (
                    f"the loss couples samples: its gradient at sample i depends on other samples' outputs "
                    f"({leak}), e.g. a contrastive (InfoNCE) loss or targets centred on the batch; a per-group "
                    "gradient needs a loss that is a sum or mean of per-sample terms; record without groups, "
                    "or pass assume_independent=True if you know better"
                )
    return None
