"""The exact generic path: group gradients of any module by replaying its forward.

For a module whose weights are not visible as AᵀΔ (``nn.LSTM``, ``nn.MultiheadAttention``,
``nn.Embedding``, a parameter used functionally), each call's inputs, RNG state, autocast state,
buffers and output adjoints are kept during the step. After the backward, the call is replayed
once and ``torch.autograd.grad(outputs, params, grad_outputs=M ⊙ Δ, is_grads_batched=True)``
gives, in one vmapped backward per chunk of groups, the gradient contributed by each group (M
masks Δ along the sample axis). Never forms an N × |θ| per-sample tensor unless the groups are
single samples; the vmapped batch is at most :data:`MASK_CHUNK` groups.

The replay leaves no trace: the module's buffers are set to their values before the original
call (so the replay computes the same function), then restored to their values after it
(BatchNorm running statistics and ``num_batches_tracked`` are not updated twice); the RNG state
is forked; autocast is re-entered with the original settings, so casts are the original ones.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map

from .groups import GroupIndex
from .registry import SampleLayout

MASK_CHUNK = 32  # groups per vmapped backward (bounds its memory to 32 · |θ| and 32 · activations)
_DEPTH = [0]  # shared by every recorder: internal forwards/backwards are not real calls for anyone


def internal() -> bool:
    """True while a recorder replays a forward or probes the graph (hooks must ignore the calls)."""
    return _DEPTH[0] > 0


@contextlib.contextmanager
def internal_scope() -> Iterator[None]:
    _DEPTH[0] += 1
    try:
        yield
    finally:
        _DEPTH[0] -= 1


@dataclass
class CallState:
    """What a replay needs to compute exactly what the original call computed."""

    rng: dict[str, torch.Tensor]
    autocast: list[tuple[str, torch.dtype, bool]]  # (device type, dtype, cache enabled) per active autocast
    buffers: list[torch.Tensor]  # clones of the module's buffers before the call


@dataclass
class ReplayCall:
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    state: CallState
    layouts: list[SampleLayout | None]
    deltas: dict[int, torch.Tensor] = field(default_factory=dict)


def capture_state(module: nn.Module, device: torch.device) -> CallState:
    rng = {"cpu": torch.random.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    casts = [
        (dev, torch.get_autocast_dtype(dev), torch.is_autocast_cache_enabled())
        for dev in ("cpu", "cuda")
        if torch.is_autocast_enabled(dev)
    ]
    with torch.no_grad():
        buffers = [b.clone() for b in module.buffers()]
    return CallState(rng, casts, buffers)


def start_call(
    args: tuple[Any, ...], kwargs: dict[str, Any], state: CallState, layouts: list[SampleLayout | None]
) -> ReplayCall:
    return ReplayCall(_detach(args), _detach(kwargs), state, layouts)


def _detach(obj: Any) -> Any:
    return tree_map(lambda t: t.detach() if isinstance(t, torch.Tensor) else t, obj)


@contextlib.contextmanager
def _as_before(module: nn.Module, state: CallState) -> Iterator[None]:
    """Buffers as before the original call, RNG forked and set, autocast as it was; all restored."""
    buffers = list(module.buffers())
    with torch.no_grad():
        after = [b.clone() for b in buffers]
        for b, old in zip(buffers, state.buffers):
            b.copy_(old)
    devices = [torch.cuda.current_device()] if "cuda" in state.rng else []
    try:
        with torch.random.fork_rng(devices=devices), contextlib.ExitStack() as stack:
            torch.random.set_rng_state(state.rng["cpu"])
            if "cuda" in state.rng:
                torch.cuda.set_rng_state(state.rng["cuda"])
            for dev, dtype, cache in state.autocast:
                stack.enter_context(torch.autocast(dev, dtype=dtype, cache_enabled=cache))
            yield
    finally:
        with torch.no_grad():
            for b, new in zip(buffers, after):
                b.copy_(new)


def replay_grads(
    module: nn.Module, call: ReplayCall, params: Sequence[torch.Tensor], groups: GroupIndex
) -> list[torch.Tensor] | None:
    """Gradients ``(K, *p.shape)`` for each param, one row per group (K = 1 without groups)."""
    if not call.deltas:
        return None
    with _as_before(module, call.state), torch.enable_grad():
        out = module(*call.args, **call.kwargs)
        flat = tree_flatten(out)[0]
        outs = [flat[i] for i in sorted(call.deltas)]
        group_pos = [_positions(call, i, groups) for i in sorted(call.deltas)]
        rows: list[list[torch.Tensor]] = [[] for _ in params]
        for start in range(0, groups.k, MASK_CHUNK):
            stop = min(groups.k, start + MASK_CHUNK)
            grad_outs = [
                _masked(call.deltas[i], call.layouts[i], pos, start, stop)
                for i, pos in zip(sorted(call.deltas), group_pos)
            ]
            for j, g in enumerate(_batched_grad(outs, params, grad_outs)):
                rows[j].append(g)
    return [torch.cat(r) for r in rows]


def _positions(call: ReplayCall, i: int, groups: GroupIndex) -> torch.Tensor | None:
    layout = call.layouts[i]
    if not groups.grouped or layout is None:
        return None
    return groups.of_positions(layout.ids, call.deltas[i].device)


def _masked(
    delta: torch.Tensor, layout: SampleLayout | None, pos: torch.Tensor | None, start: int, stop: int
) -> torch.Tensor:
    """(stop - start, *delta.shape): Δ kept only at the positions of groups start..stop-1."""
    if pos is None or layout is None:
        return delta.unsqueeze(0)
    axis = layout.axis % delta.dim()
    ks = torch.arange(start, stop, device=delta.device)
    m = (pos.unsqueeze(0) == ks.unsqueeze(1)).to(delta.dtype)  # (B, P)
    shape = [m.shape[0]] + [1] * delta.dim()
    shape[axis + 1] = delta.shape[axis]
    return m.reshape(shape) * delta.unsqueeze(0)


def _batched_grad(
    outs: list[torch.Tensor], params: Sequence[torch.Tensor], grad_outs: list[torch.Tensor]
) -> list[torch.Tensor]:
    b = grad_outs[0].shape[0]
    grads: Sequence[torch.Tensor | None]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # vmap fallback performance notes
            grads = torch.autograd.grad(
                outs, list(params), grad_outputs=grad_outs, is_grads_batched=True, allow_unused=True, retain_graph=True
            )
    except RuntimeError:
        # Some kernels (e.g. fused RNN backward) have no batching rule: one backward per row.
        per_row = [
            torch.autograd.grad(
                outs, list(params), grad_outputs=[g[r] for g in grad_outs], allow_unused=True, retain_graph=True
            )
            for r in range(b)
        ]
        grads = [None if per_row[0][j] is None else torch.stack([r[j] for r in per_row]) for j in range(len(params))]
    return [
        torch.zeros((b, *p.shape), dtype=p.dtype, device=p.device) if g is None else g.detach()
        for g, p in zip(grads, params)
    ]
