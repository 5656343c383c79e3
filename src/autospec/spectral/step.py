"""One recorded step in the training thread: hooks collect, the block's exit hands over owned work.

The forward hook of an adapter layer keeps the call's input (:class:`AdapterCall`); the tensor
hook on its output receives Δ. Calls are buffered and reduced together (all calls of a weight in
one go: a recurrent cell's T calls become one gather and one product, not T of each), at the
block's exit or, for a weight called many times, whenever its buffered rows pass a memory budget.

Reducing means turning the rows into tensors the recorder owns — rows laid out by group with
one gather (:meth:`~.groups.GroupIndex.gather`), or per-group gradients formed with one batched
product where that is as cheap as copying the rows (narrow layers) — and never leaving views of
the model's activations behind, so the work can finish on another thread (:mod:`.pipeline`).
Generic-route modules are replayed at the exit (:mod:`.replay`). Singular values are not taken
here: :meth:`Step.finish` returns a job for the worker (or runs it inline with ``sync=True``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from . import replay
from .adapters.base import LayerAdapter
from .groups import GroupIndex
from .input_cache import InputCache
from .linalg import DTYPE, eps_of
from .options import RecorderOptions
from .reduce import form
from .targets import AdapterUse, GenericUse, Plan
from .work import CachedGradWork, GradWork, ReusedWork, RowsWork, SharingWork, Work

_FLUSH_ELEMENTS = 1 << 22  # buffered Δ elements of a weight called many times before they are reduced
_CHUNK_ELEMENTS = 1 << 23  # rows × width per reduction chunk of one call (bounds an unfolded input)


@dataclass
class AdapterCall:
    use: AdapterUse
    x: torch.Tensor  # input, samples first, in the dtype the layer computed in
    source: torch.Tensor  # the tensor the layer received (identity for the input cache)
    index: int  # forward order among this weight's calls in the step
    hit: bool  # the input is the cached one (same data as the last recorded step)
    data_input: bool  # a tensor that does not require grad (a candidate for the input cache)
    delta: torch.Tensor | None = None
    grad_done: bool = False  # its gradient came from the adapter's formed route

    def release(self) -> None:
        self.x = self.source = self.delta = None  # type: ignore[assignment]


@dataclass
class KeyState:
    """What one weight's reduced calls have left so far (all owned tensors)."""

    formed: torch.Tensor | None = None  # (K, n_out, n_in) float64
    a: list[torch.Tensor] = field(default_factory=list)  # grad row blocks (K, rows, n_in)
    d: list[torch.Tensor] = field(default_factory=list)
    counts: list[int] | None = None  # real grad rows per group
    act: list[torch.Tensor] = field(default_factory=list)
    act_counts: list[int] | None = None
    delta: list[torch.Tensor] = field(default_factory=list)
    delta_counts: list[int] | None = None
    sharing: list[SharingWork] = field(default_factory=list)
    shares: int = 0
    layout: dict[str, object] = field(default_factory=dict)  # positions per call and their shape


def _add(counts: list[int] | None, new: list[int]) -> list[int]:
    return list(new) if counts is None else [a + b for a, b in zip(counts, new)]


@dataclass
class Step:
    plan: Plan
    groups: GroupIndex
    options: RecorderOptions
    caches: dict[str, InputCache]
    calls: dict[str, int] = field(default_factory=dict)
    pending: dict[str, list[AdapterCall]] = field(default_factory=dict)
    pending_elements: dict[str, int] = field(default_factory=dict)
    state: dict[str, KeyState] = field(default_factory=dict)
    replays: dict[int, list[replay.ReplayCall]] = field(default_factory=dict)  # by id(GenericUse)
    first: dict[str, AdapterCall] = field(default_factory=dict)  # each weight's first call
    device: torch.device | None = None  # where the step's tensors are (first adapter call's input)
    gathered: dict[str, torch.Tensor] = field(default_factory=dict)  # a data input laid out by group
    shipped_bytes: int = 0  # row blocks handed over instead of formed products

    def __post_init__(self) -> None:
        self.n_uses, self.n_adapter_uses = self.plan.counts()
        self.want = set(self.options.stats)

    # ------------------------------------------------------------------ hooks
    def add_call(self, use: AdapterUse, source: torch.Tensor, x: torch.Tensor, data_input: bool) -> AdapterCall:
        key = use.key
        index = self.calls.get(key, 0)
        self.calls[key] = index + 1
        hit = False
        if data_input and self.options.static_inputs is not False and index == 0:
            cache = self.caches.get(key)
            hit = cache is not None and cache.matches(source, x, self.groups)
        call = AdapterCall(use, x, source, index, hit, data_input)
        if index == 0:
            self.first[key] = call
        if self.device is None:
            self.device = x.device
        return call

    def on_delta(self, call: AdapterCall, delta: torch.Tensor) -> None:
        key = call.use.key
        call.delta = delta
        self.pending.setdefault(key, []).append(call)
        self.pending_elements[key] = self.pending_elements.get(key, 0) + delta.numel() + call.x.numel()
        if len(self.pending[key]) > 1 and self.pending_elements[key] > _FLUSH_ELEMENTS:
            self.flush(key)

    # ------------------------------------------------------------------ reducing calls
    def ks(self, key: str) -> KeyState:
        if key not in self.state:
            self.state[key] = KeyState()
        return self.state[key]

    def flush(self, key: str) -> None:
        """Reduce the buffered calls of ``key``: one reduction per module (its calls side by side)."""
        calls = sorted(self.pending.pop(key, []), key=lambda c: c.index)
        self.pending_elements.pop(key, None)
        by_module: dict[int, list[AdapterCall]] = {}
        for c in calls:
            c.grad_done = "grad" in self.want and self._conv_formed(c)
            by_module.setdefault(id(c.use.module), []).append(c)
        rows_besides_grad = bool({"act", "delta"} & self.want) or self.options.sharing
        for batch in by_module.values():
            if not (batch[0].grad_done and not rows_besides_grad):
                self._reduce_rows(key, batch, batch[0].grad_done)
        for c in calls:
            if c is not self.first.get(key):  # the first call's input may seed the input cache
                c.release()

    def _conv_formed(self, call: AdapterCall) -> bool:
        """Adapters with a formed route (convolutions): every group with at least min(n_in, n_out)
        rows gets its gradient from the layer's own backward, without unfolding the input."""
        u, delta = call.use, call.delta
        assert delta is not None
        if type(u.adapter).group_grads is LayerAdapter.group_grads:  # no formed route (Linear)
            return False
        n_out, n_in = self.plan.slots[u.key].shape
        rows = self._rows_per_sample(call)
        smallest = min(self.groups.counts) if self.groups.grouped else delta.shape[0]
        if smallest * rows < min(n_in, n_out) or self.options.iterative((n_out, n_in)):
            return False
        formed = u.adapter.group_grads(u.module, call.x, delta, self.groups.blocks(delta.device))
        if formed is None:
            return False
        self._add_formed(u.key, formed)
        return True

    def _rows_per_sample(self, call: AdapterCall) -> int:
        """R of one call (the adapter's own rule when it has one, else Δ's elements per output)."""
        delta = call.delta
        assert delta is not None
        ad = call.use.adapter
        if type(ad).rows_per_sample is not LayerAdapter.rows_per_sample:
            return max(1, ad.rows_per_sample(call.use.module, delta))
        n_out = self.plan.slots[call.use.key].shape[0]
        return max(1, delta.numel() // (delta.shape[0] * n_out)) if delta.shape[0] else 1

    def _add_formed(self, key: str, grads: torch.Tensor) -> None:
        ks = self.ks(key)
        g = grads.to(DTYPE)
        ks.formed = g if ks.formed is None else ks.formed + g
        k = self.groups.k
        cap = min(self.plan.slots[key].shape)
        ks.counts = _add(ks.counts, [cap] * k)

    def _reduce_rows(self, key: str, calls: list[AdapterCall], grad_done: bool) -> None:
        """Calls of one module: their rows side by side (samples × all positions), by sample chunk."""
        n = calls[0].x.shape[0]
        n_out, n_in = self.plan.slots[key].shape
        if any(c.x.shape[0] != n for c in calls):  # no groups, calls on different batch sizes
            for c in calls:
                self._reduce_rows(key, [c], grad_done)
            return
        per_sample = sum(self._rows_per_sample(c) for c in calls)
        chunk = max(1, _CHUNK_ELEMENTS // (per_sample * (n_in + n_out)))
        if self.options.sharing:
            chunk = n  # every sample of a share in one block
        need_a = ("grad" in self.want and not grad_done) or "act" in self.want or self.options.sharing
        for s in range(0, n, chunk):
            gi = self.groups if chunk >= n else self.groups.sub(s, min(n, s + chunk))
            part = slice(s, s + chunk)
            a = self._gathered_input(key, calls, gi, part, chunk >= n) if need_a else None
            d = gi.gather(_side_by_side([c.use.adapter.output_rows(c.use.module, c.delta[part]) for c in calls]))  # type: ignore[index]
            self._reduce_block(key, calls, gi, (a, d, per_sample), grad_done)

    def _gathered_input(
        self, key: str, calls: list[AdapterCall], gi: GroupIndex, part: slice, whole: bool
    ) -> torch.Tensor:
        """A laid out by group; an unchanged data input's layout is made once and kept in its cache."""
        c0 = calls[0]
        single = whole and len(calls) == 1 and c0.index == 0
        cache = self.caches.get(key)
        if single and c0.hit and cache is not None and cache.rows is not None:
            return cache.rows
        a = gi.gather(_side_by_side([c.use.adapter.input_rows(c.use.module, c.x[part]) for c in calls]))
        if single and c0.data_input:
            self.gathered[key] = a
        return a

    def _reduce_block(
        self, key: str, calls: list[AdapterCall], gi: GroupIndex, adr: tuple[torch.Tensor | None, torch.Tensor, int],
        grad_done: bool,
    ) -> None:  # fmt: skip
        ks = self.ks(key)
        a, d, r = adr
        want_grad = "grad" in self.want and not grad_done
        counts = [c * r for c in gi.counts] if gi.grouped else [d.shape[1]]
        if self.options.sharing and a is not None:
            self._share(key, calls, gi, (a, d, r))
        if want_grad:
            assert a is not None
            if self._form_here(key, counts, a, d):
                self._add_formed_rows(key, form(d, a), counts)
            else:
                ks.a.append(a)
                ks.d.append(d)
                ks.counts = _add(ks.counts, counts)
                self.shipped_bytes += a.numel() * a.element_size() + d.numel() * d.element_size()
        if "act" in self.want and a is not None:
            ks.act.append(a)
            ks.act_counts = _add(ks.act_counts, counts)
            ks.act = self._fold(ks.act, ks.act_counts)
        if "delta" in self.want:
            ks.delta.append(d)
            ks.delta_counts = _add(ks.delta_counts, counts)
            ks.delta = self._fold(ks.delta, ks.delta_counts)

    def _add_formed_rows(self, key: str, grads: torch.Tensor, counts: list[int]) -> None:
        ks = self.ks(key)
        ks.formed = grads if ks.formed is None else ks.formed + grads
        ks.counts = _add(ks.counts, counts)

    def _form_here(self, key: str, counts: list[int], a: torch.Tensor, d: torch.Tensor) -> bool:
        """Form the per-group gradients now (one batched product) instead of keeping the rows."""
        budget = self.options.queue_bytes // 2
        if a.device.type == "cpu" and self.shipped_bytes + 8 * (a.numel() + d.numel()) <= budget:
            return False  # the common case, decided without more
        shape = self.plan.slots[key].shape
        cap = min(shape)
        big = all(c >= cap for c in counts)
        if self.options.iterative(shape):
            return False
        if a.device.type != "cpu":
            return big  # products are cheap on the device; small groups go to QR cores there
        # on the host the rows are already copies (the gather): the worker forms the products, off
        # the critical path, unless the rows would overfill the queue's memory cap
        rows_bytes = a.numel() * a.element_size() + d.numel() * d.element_size()
        return big and self.shipped_bytes + rows_bytes > self.options.queue_bytes // 2

    def _fold(self, blocks: list[torch.Tensor], counts: list[int]) -> list[torch.Tensor]:
        """Row blocks of σ(A)/σ(Δ), folded into R factors (same σ, at most width × width per group)
        only once they would overfill the queue's memory cap; otherwise the worker folds them."""
        held = sum(b.numel() * b.element_size() for b in blocks)
        width = blocks[0].shape[-1]
        if held <= self.options.queue_bytes // 4 or sum(b.shape[1] for b in blocks) <= 2 * width:
            return blocks
        stacked = torch.cat([b.to(DTYPE) for b in blocks], dim=1)
        return [torch.linalg.qr(stacked, mode="r")[1]]

    def _share(
        self, key: str, calls: list[AdapterCall], gi: GroupIndex, adr: tuple[torch.Tensor, torch.Tensor, int]
    ) -> None:
        """σ(G_s) work for every share (call, position) of these calls of one module (sharing=True):
        per share either the formed per-group gradients or the rows, whichever is smaller."""
        ks = self.ks(key)
        n_out, n_in = self.plan.slots[key].shape
        a, d, r = adr
        k = a.shape[0]
        a4 = a.view(k, -1, r, n_in)
        d4 = d.view(k, -1, r, n_out)
        ks.shares += r
        kind = "convolution" if hasattr(calls[0].use.module, "kernel_size") else "token-wise"
        ks.layout = {"positions": r // len(calls), "position_shape": _position_shape(calls[0]), "kind": kind}
        counts = list(gi.counts) if gi.grouped else [a4.shape[1]]
        work = SharingWork(
            key, (n_out, n_in), eps_of(self.plan.slots[key].param.dtype), list(self.groups.ids), counts,
            [c.index for c in calls], r // len(calls),
        )  # fmt: skip
        if r * k * n_out * n_in * 8 <= (a4.numel() + d4.numel()) * a4.element_size():
            at = a4.permute(2, 0, 1, 3).reshape(r * k, -1, n_in)
            dt = d4.permute(2, 0, 1, 3).reshape(r * k, -1, n_out)
            work.formed = form(dt, at).view(r, k, n_out, n_in)
        else:
            work.a, work.d = a4, d4
        ks.sharing.append(work)

    # ------------------------------------------------------------------ finishing
    def finish(self, make_job: Callable[[list[Work], list[str], list[str]], None]) -> None:
        """Reduce what is left, replay generic modules, and hand the work over."""
        for g in self.plan.generics:
            self._finish_generic(g)
        works: list[Work] = []
        grad_only: list[str] = []
        for key in self.plan.slots:
            if self.n_uses[key] > self.n_adapter_uses[key]:
                grad_only.append(key)
            works += self._finish_key(key)
        keys = list(dict.fromkeys(w.key for w in works))
        self.release()
        make_job(works, keys, grad_only)

    def release(self) -> None:
        """Drop every reference to the step's activations and adjoints: the tensor hooks that
        still point at this step (on outputs the caller may keep) then hold nothing large, and
        no reference cycle runs through the autograd graph."""
        for calls in self.pending.values():
            for c in calls:
                c.release()
        for c in self.first.values():
            c.release()
        self.pending.clear()
        self.first.clear()
        self.gathered.clear()
        self.state.clear()
        self.replays.clear()

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
                    self._add_formed(key, gk.reshape(gk.shape[0], self.plan.slots[key].shape[0], -1))

    # ------------------------------------------------------------------ the input cache
    def _hit(self, key: str) -> bool:
        """The weight's one call this step had the cached input."""
        return self.calls.get(key) == 1 and key in self.first and self.first[key].hit

    def _cache_for(self, key: str) -> InputCache | None:
        """The input cache after this step: kept on a hit, else a new one for a single data input
        (a weight called several times, or on a non-data input, has none)."""
        if self._hit(key):
            return self.caches[key]
        call = self.first.get(key)
        if self.calls.get(key) != 1 or call is None or not call.data_input or self.options.static_inputs is False:
            return None
        cache = InputCache(call.source, call.x, self.groups)
        cache.rows = self.gathered.get(key)
        if self.options.static_inputs:  # declared full-batch training: factors at once
            cache.build_factors(self._input_layout(call, cache))
        return cache

    def _input_layout(self, call: AdapterCall, cache: InputCache) -> torch.Tensor:
        if cache.rows is None:
            u = call.use
            cache.rows = self.groups.gather(u.adapter.input_rows(u.module, cache.x))
        return cache.rows

    def _cached_route(self, key: str, cache: InputCache | None) -> AdapterCall | None:
        """The one call of ``key`` when σ(G) can come from the unchanged input's factors.

        Decided from the step's own state only (never from how far the worker got), so the
        route — and the bits — are the same in synchronous and asynchronous mode."""
        calls = self.pending.get(key, [])
        if not self._hit(key) or len(calls) != 1 or self.n_uses[key] != 1 or key in self.state:
            return None
        call = calls[0]
        n_out, n_in = self.plan.slots[key].shape
        if cache is None or "grad" not in self.want or self.options.subspaces is not None:
            return None
        if self.options.sharing or self.options.iterative((n_out, n_in)):
            return None
        assert call.delta is not None
        rows = call.x.shape[0] * self._rows_per_sample(call)
        if rows >= n_in or ("act" in self.want and not cache.act_planned):
            return None
        return call

    def _finish_key(self, key: str) -> list[Work]:
        shape = self.plan.slots[key].shape
        eps = eps_of(self.plan.slots[key].param.dtype)
        ids = list(self.groups.ids)
        cache = self._cache_for(key)
        works: list[Work] = []
        cached = self._cached_route(key, cache)
        if cached is not None:
            assert cache is not None
            works += self._cached_works(key, cached, cache, eps, ids)
        else:
            self.flush(key)
            if cache is not None and cache.rows is None:
                cache.rows = self.gathered.get(key)
        ks = self.state.pop(key, None)
        if ks is not None:
            if ks.counts is not None and "grad" in self.want:
                vectors, iterative = self.options.subspaces, self.options.iterative(shape)
                grad = GradWork(key, shape, eps, ids, ks.counts, ks.formed, ks.a, ks.d, vectors, iterative)
                works.append(grad)
            if ks.delta_counts is not None:
                works.append(RowsWork(key, "delta", shape[0], eps, ids, ks.delta_counts, ks.delta))
            if ks.act_counts is not None:
                works.append(self._act_work(key, ks, cache, eps, ids))
            if ks.shares > 1:  # a weight used once per sample has no sharing dimension
                for w in ks.sharing:
                    w.layout = {"calls": self.calls.get(key, 0), **ks.layout}
                works += ks.sharing
        if cache is None:
            self.caches.pop(key, None)
        else:
            self.caches[key] = cache
        return works

    def _act_work(self, key: str, ks: KeyState, cache: InputCache | None, eps: float, ids: list[int]) -> Work:
        if cache is not None and self._hit(key) and cache.act_planned:
            return ReusedWork(key, "act", cache)
        assert ks.act_counts is not None
        work = RowsWork(key, "act", self.plan.slots[key].shape[1], eps, ids, ks.act_counts, ks.act)
        if cache is not None:
            work.cache = cache
            cache.act_planned = True
        return work

    def _cached_works(self, key: str, call: AdapterCall, cache: InputCache, eps: float, ids: list[int]) -> list[Work]:
        u = call.use
        assert call.delta is not None
        if cache.factors is None:
            cache.build_factors(self._input_layout(call, cache))
        assert cache.factors is not None
        d = self.groups.gather(u.adapter.output_rows(u.module, call.delta))
        counts = list(self.groups.counts) if self.groups.grouped else [d.shape[1]]
        shape = self.plan.slots[key].shape
        works: list[Work] = [CachedGradWork(key, shape, eps, ids, counts, cache.factors, cache.whole, d)]
        if "delta" in self.want:
            works.append(RowsWork(key, "delta", shape[0], eps, ids, counts, [d]))
        if "act" in self.want:
            works.append(ReusedWork(key, "act", cache))
        self.pending.pop(key, None)
        return works


def _side_by_side(rows: list[torch.Tensor]) -> torch.Tensor:
    """Per-sample rows of several calls ``(n, R_i, w)`` as one ``(n, ΣR_i, w)``."""
    return rows[0] if len(rows) == 1 else torch.cat(rows, dim=1)


def _position_shape(call: AdapterCall) -> list[int]:
    """The shape of a call's positions (a convolution's output size; [R] otherwise)."""
    delta = call.delta
    assert delta is not None
    if delta.dim() > 2 and hasattr(call.use.module, "kernel_size"):
        return [int(s) for s in delta.shape[2:]]
    return [int(delta[0].numel() // delta.shape[-1])] if delta.dim() > 2 else [1]
