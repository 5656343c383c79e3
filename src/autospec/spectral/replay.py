"""The exact generic path: group gradients of any module by replaying its forward.

For a module whose weights are not visible as AᵀΔ (``nn.LSTM``, ``nn.MultiheadAttention``,
``nn.Embedding``, a parameter used functionally), each call's inputs, RNG state and output
adjoints are kept during the step. After the backward, the call is replayed once and
``torch.autograd.grad(outputs, params, grad_outputs=M ⊙ Δ, is_grads_batched=True)`` gives, in
one vmapped backward, the gradient contributed by each group (M masks Δ along the sample axis)
plus the whole-batch gradient. Exact as long as samples do not mix downstream (no BatchNorm),
which :class:`~autospec.spectral.recorder.SpectralRecorder` checks. Never forms an N × |θ|
per-sample tensor: the batch of the vmapped backward is the number of groups + 1.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map

from .adapters import batch_dims

_DEPTH = [0]  # shared by every recorder: replayed forwards are not real calls for anyone


def replaying() -> bool:
    return _DEPTH[0] > 0


@contextlib.contextmanager
def replay_scope():
    _DEPTH[0] += 1
    try:
        yield
    finally:
        _DEPTH[0] -= 1


@dataclass
class ReplayCall:
    args: tuple
    kwargs: dict
    rng: dict[str, Any]
    deltas: dict[int, torch.Tensor] = field(default_factory=dict)


def _detach(obj):
    return tree_map(lambda t: t.detach() if isinstance(t, torch.Tensor) else t, obj)


def capture_rng(device: torch.device) -> dict[str, Any]:
    state = {"cpu": torch.random.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def start_call(args: tuple, kwargs: dict, rng: dict[str, Any]) -> ReplayCall:
    return ReplayCall(_detach(args), _detach(kwargs), rng)


def _masks(group_index: torch.Tensor | None, n_groups: int, n: int, like: torch.Tensor) -> torch.Tensor:
    """(B, N) masks: one row per group, then all-ones for the whole batch."""
    ones = torch.ones((1, n), dtype=like.dtype, device=like.device)
    if group_index is None or n_groups <= 1:
        return ones
    onehot = torch.nn.functional.one_hot(group_index.to(like.device), n_groups).T.to(like.dtype)
    return torch.cat([onehot, ones])


def replay_grads(
    module: nn.Module,
    call: ReplayCall,
    params: list[torch.Tensor],
    group_index: torch.Tensor | None,
    n_groups: int,
) -> list[torch.Tensor] | None:
    """Gradients ``(B, *p.shape)`` for each param: B = groups then whole (or whole only)."""
    if not call.deltas:
        return None
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if "cuda" in call.rng else []):
        torch.random.set_rng_state(call.rng["cpu"])
        if "cuda" in call.rng:
            torch.cuda.set_rng_state(call.rng["cuda"])
        with torch.enable_grad():
            out = module(*call.args, **call.kwargs)
    flat, _ = tree_flatten(out)
    dims = batch_dims(module, flat)
    outs, grad_outs = [], []
    for i, delta in sorted(call.deltas.items()):
        bd = dims[i]
        m = _masks(group_index, n_groups, delta.shape[bd], delta)
        shape = [m.shape[0]] + [1] * delta.dim()
        shape[bd + 1] = delta.shape[bd]
        outs.append(flat[i])
        grad_outs.append(m.reshape(shape) * delta.unsqueeze(0))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # vmap fallback performance notes
            grads = torch.autograd.grad(
                outs, params, grad_outputs=grad_outs, is_grads_batched=True, allow_unused=True, retain_graph=True
            )
    except RuntimeError:
        # Some kernels (e.g. fused RNN backward) have no batching rule: one backward per row.
        rows = [
            torch.autograd.grad(
                outs, params, grad_outputs=[g[b] for g in grad_outs], allow_unused=True, retain_graph=True
            )
            for b in range(grad_outs[0].shape[0])
        ]
        grads = [None if rows[0][j] is None else torch.stack([r[j] for r in rows]) for j in range(len(params))]
    b = grad_outs[0].shape[0]
    return [
        torch.zeros((b, *p.shape), dtype=p.dtype, device=p.device) if g is None else g.detach()
        for g, p in zip(grads, params)
    ]
