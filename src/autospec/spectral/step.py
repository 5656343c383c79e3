"""One recorded step: what the hooks collect, how adapter calls are reduced, how it all finishes.

The pipeline has three seams: hooks hand each adapter call's (A, Δ) to :meth:`Step.reduce`
(rows → per-group accumulators), generic calls are kept as :class:`~.replay.ReplayCall` and
replayed in :meth:`Step.finish`, and :meth:`Step.finish` turns every weight's accumulators into
σ (and vectors) in a :class:`~.snapshot.Snapshot`. Contributions to one weight from any number of
uses (tied weights, adapter and generic alike) meet in one accumulator before σ is taken.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from . import replay
from .accumulators import GradSpectra, MatrixSpectra, Spectrum
from .groups import GroupIndex
from .input_cache import InputCache
from .linalg import eps_of, rank_cut
from .options import RecorderOptions
from .snapshot import WHOLE, Snapshot
from .subspaces import normalise_signs
from .targets import AdapterUse, GenericUse, Plan

_CHUNK_ELEMENTS = 1 << 23  # rows × width per reduction chunk (64 MiB in float64)


@dataclass
class AdapterCall:
    use: AdapterUse
    x: torch.Tensor  # input, samples first, in the dtype the layer computed in
    cached: bool  # the input equals the cached one (same data as the last recorded step)


@dataclass
class Step:
    plan: Plan
    groups: GroupIndex
    options: RecorderOptions
    caches: dict[str, InputCache]
    grad: dict[str, GradSpectra] = field(default_factory=dict)
    act: dict[str, MatrixSpectra] = field(default_factory=dict)
    delta: dict[str, MatrixSpectra] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    cached_calls: dict[str, int] = field(default_factory=dict)
    new_inputs: dict[str, torch.Tensor] = field(default_factory=dict)  # data inputs that may repeat
    factored: dict[str, list[torch.Tensor]] = field(default_factory=dict)  # Δ blocks, cached-factor route
    replays: dict[int, list[replay.ReplayCall]] = field(default_factory=dict)  # by id(GenericUse)
    nonfinite: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.n_uses = {k: len(self.plan.uses_of(k)) for k in self.plan.slots}
        self.want = set(self.options.stats)

    # ------------------------------------------------------------------ adapter calls
    def grad_acc(self, key: str) -> GradSpectra:
        n_out, n_in = self.plan.slots[key].shape
        if key not in self.grad:
            self.grad[key] = GradSpectra(self.groups.k, n_in, n_out)
        return self.grad[key]

    def reduce(self, call: AdapterCall, grad: torch.Tensor) -> None:
        """Fold one adapter call's A and Δ (``grad``: output adjoint, samples first) into the step."""
        u, x = call.use, call.x
        key, ad, m = u.key, u.adapter, u.module
        n_out, n_in = self.plan.slots[key].shape
        n = grad.shape[0]
        rows = max(1, ad.rows_per_sample(m, grad))
        chunk = max(1, _CHUNK_ELEMENTS // (rows * (n_in + n_out)))
        cache = self.caches.get(key) if call.cached else None
        act_known = cache is not None and cache.act is not None
        if (
            cache is not None
            and "grad" in self.want
            and self.options.subspaces is None
            and self.calls[key] == 1
            and self.n_uses[key] == 1
            and n * rows < n_in
            and chunk >= n
            and (act_known or "act" not in self.want)
        ):
            # cheapest exact route: σ(G_k) = σ(R_k Δ_k) with R_k from the unchanged input
            if cache.factors is None:
                cache.build_factors(self.groups.split(ad.input_rows(m, x)))
            d_groups = self.groups.split(ad.output_rows(m, grad))
            self.factored[key] = d_groups
            if "delta" in self.want:
                self.delta.setdefault(key, MatrixSpectra(self.groups.k, n_out)).add(d_groups)
            return
        need_rows = bool({"act", "delta"} & self.want) and not (act_known and "delta" not in self.want)
        formed = None
        if "grad" in self.want and self._formed_route(n, rows, min(n_in, n_out)):
            formed = ad.group_grads(m, x, grad, self.groups.blocks(x.device))
            if formed is not None:
                self.grad_acc(key).add_group_grads(formed)
                if not need_rows:
                    return
        want_a = ("grad" in self.want and formed is None) or ("act" in self.want and not act_known)
        for s in range(0, n, chunk):
            a_groups = self.groups.split(ad.input_rows(m, x[s : s + chunk]), s) if want_a else None
            d_groups = self.groups.split(ad.output_rows(m, grad[s : s + chunk]), s)
            if "grad" in self.want and formed is None:
                assert a_groups is not None
                self.grad_acc(key).add(a_groups, d_groups)
            if "act" in self.want and not act_known:
                assert a_groups is not None
                self.act.setdefault(key, MatrixSpectra(self.groups.k, n_in)).add(a_groups)
            if "delta" in self.want:
                self.delta.setdefault(key, MatrixSpectra(self.groups.k, n_out)).add(d_groups)

    def _formed_route(self, n: int, rows_per_sample: int, cap: int) -> bool:
        """Formed per-group gradients only when even the smallest group has at least ``cap`` rows
        (else the per-group QR route is cheaper in memory and time)."""
        smallest = min(self.groups.counts) if self.groups.grouped and self.groups.counts else n
        return smallest * rows_per_sample >= cap

    # ------------------------------------------------------------------ finishing
    def finish(self, snap: Snapshot) -> None:
        for g in self.plan.generics:
            self._finish_generic(g)
        for key, slot in self.plan.slots.items():
            self._finish_key(snap, key, slot.param.dtype)
        snap.finish(self.plan.slots)

    def _finish_generic(self, g: GenericUse) -> None:
        calls = self.replays.pop(id(g), [])
        if not calls:
            return
        with replay.internal_scope():
            for call in calls:
                grads = replay.replay_grads(g.module, call, g.params, self.groups)
                if grads is None:
                    continue
                for key, gk in zip(g.keys, grads):
                    self.grad_acc(key).add_group_grads(gk.reshape(gk.shape[0], self.plan.slots[key].shape[0], -1))

    def _finish_key(self, snap: Snapshot, key: str, dtype: torch.dtype) -> None:
        n_out, n_in = self.plan.slots[key].shape
        cache = self.caches.get(key)
        if self.n_uses[key] > sum(1 for a in self.plan.adapters if a.key == key):
            snap.mark_grad_only([key])  # a generic use hides A and Δ: their rows would be incomplete
        if key in self.factored:
            d_groups = self.factored.pop(key)
            assert cache is not None
            if key in self.grad:  # another call of the layer in this step: take the general route
                self.grad[key].add(self.groups.split(self.plan_rows(key, cache.x)), d_groups)
            else:
                self._put(snap, key, "grad", cache.grad_spectra(d_groups, n_in, n_out), dtype, length=min(n_in, n_out))
        if key in self.grad:
            spectra = self.grad.pop(key).finalize(self.options.subspaces)
            self._put(snap, key, "grad", spectra, dtype, length=min(n_in, n_out))
        if key in self.delta:
            self._put(snap, key, "delta", self.delta.pop(key).finalize(), dtype)
        self._finish_act(snap, key, dtype)

    def plan_rows(self, key: str, x: torch.Tensor) -> torch.Tensor:
        u = next(a for a in self.plan.adapters if a.key == key)
        return u.adapter.input_rows(u.module, x)

    def _finish_act(self, snap: Snapshot, key: str, dtype: torch.dtype) -> None:
        calls = self.calls.get(key, 0)
        all_cached = calls > 0 and self.cached_calls.get(key, 0) == calls
        cache = self.caches.get(key)
        if not all_cached:
            self.caches.pop(key, None)
            cache = None
            if calls == 1 and key in self.new_inputs:
                cache = self.caches[key] = InputCache(self.new_inputs[key], self.groups.groups)
        if "act" not in self.want or not calls:
            return
        if all_cached and cache is not None and cache.act is not None:
            whole, per = cache.act
        elif key in self.act:
            whole, per = self.act.pop(key).finalize()
            if cache is not None:
                cache.act = (whole, per)
        else:
            return
        self._put(snap, key, "act", (whole, per), dtype)

    def _put(
        self,
        snap: Snapshot,
        key: str,
        stat: str,
        spectra: tuple[Spectrum, list[Spectrum]],
        dtype: torch.dtype,
        *,
        length: int | None = None,
    ) -> None:
        whole, per_group = spectra
        if self.groups.grouped and not per_group:  # a single group: its part is the whole
            per_group = [whole]
        eps = eps_of(dtype)
        top_k = self.options.top_k
        for gid, sp in [(WHOLE, whole), *zip(self.groups.ids, per_group)]:
            n = len(sp.values) if length is None else length
            values, rank = rank_cut(sp.values, n, sp.shape, eps)
            if np.isnan(values).any():
                self.nonfinite.append(key)
            if top_k is not None:
                values, rank = values[:top_k], min(rank, top_k)
            snap.add_spectrum(key, stat, gid, values, rank)
            if stat == "grad" and self.options.subspaces is not None and sp.left is not None and sp.right is not None:
                keep = min(rank, self.options.subspaces)
                left, right = normalise_signs(sp.left[:keep].cpu().numpy(), sp.right[:keep].cpu().numpy())
                snap.add_vectors(key, gid, left, right)
