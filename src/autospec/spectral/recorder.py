"""SpectralRecorder: exact per-layer, per-group spectra of G = AᵀΔ, A and Δ during training.

How one recorded step works
---------------------------
On entering ``record()`` hooks are installed; on leaving they are removed, so an unrecorded step
costs nothing. A forward hook on each adapter layer keeps a reference to that call's input (the
tensor autograd already saved) and registers a hook on that call's output tensor, which receives
Δ during the backward. The closure binds Δ to the A of the same call, so a module called several
times per step (RNN cells over time, shared weights) pairs correctly in any backward order — this
subsumes the LIFO stack of NOTES §2, and tensor hooks, unlike full backward hooks, survive
in-place ops such as ``ReLU(inplace=True)``. The Δ hook reduces at once into bounded
accumulators (see :mod:`.accumulators`) and drops the input reference. Modules without an
adapter go through the exact generic replay (:mod:`.replay`), grad only. On leaving the block,
each weight's spectra are finished in one batched float64 SVD.

Group spectra use the loss's own normalisation: with a mean-reduced loss Δ carries 1/N (not
1/N_g), so Σ_g G_g = G, the gradient of this backward.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from . import replay
from .accumulators import GradSpectra, MatrixSpectra, add_formed, formed_spectra
from .adapters import batch_dims
from .input_cache import InputCache
from .snapshot import STATS, WHOLE, Snapshot
from .targets import Target, find_targets

_SAMPLE_MIXING = (nn.modules.batchnorm._BatchNorm,)
_CHUNK_ELEMENTS = 1 << 23  # rows × width per reduction chunk (64 MiB in float64)


class _Step:
    """Everything that lives for one recorded step."""

    def __init__(self, groups: torch.Tensor | None):
        self.groups = groups
        if groups is None:
            self.ids: list[int] = []
            self.index = None
            self.k = 1
        else:
            uniq, inverse = torch.unique(groups, return_inverse=True)
            self.ids = [int(v) for v in uniq.tolist()]
            self.index = inverse
            self.k = len(self.ids)
            # the whole batch's order by group, reused by every layer of the step
            self.order = torch.argsort(inverse, stable=True)
            self.counts = torch.bincount(inverse, minlength=self.k).tolist()
        self.grad: dict[str, GradSpectra] = {}
        self.act: dict[str, MatrixSpectra] = {}
        self.delta: dict[str, MatrixSpectra] = {}
        self.calls: dict[str, int] = {}
        self.cached_calls: dict[str, int] = {}  # calls whose input matched the InputCache
        self.new_inputs: dict[str, torch.Tensor] = {}  # data inputs that may repeat next step
        self.factored: dict[str, list[torch.Tensor]] = {}  # Δ blocks for the cached-factor route
        self.replays: dict[str, list[replay.ReplayCall]] = {}


class SpectralRecorder:
    """Record σ(G), σ(A), σ(Δ) of a model's ≥2-D weights, whole batch and per group.

    Parameters
    ----------
    model : the network; inputs are batch-first (dim 0 indexes samples).
    stats : subset of ``("grad", "act", "delta")``. ``act``/``delta`` exist for adapter layers
        (Linear, Conv1d/2d/3d and the autospec.nn modules built from them).
    include : parameter names, fnmatch patterns or module types to record (default: all).
    every : record every k-th ``record()`` call; others yield an empty snapshot at no cost.
    top_k : keep only the k largest singular values.
    """

    def __init__(
        self,
        model: nn.Module,
        stats: Sequence[str] = STATS,
        include: Iterable | None = None,
        every: int = 1,
        top_k: int | None = None,
    ):
        bad = [s for s in stats if s not in STATS]
        if bad or not stats:
            raise ValueError(f"stats must be a non-empty subset of {STATS}, got {tuple(stats)}")
        if int(every) < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if top_k is not None and int(top_k) < 1:
            raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
        self.model = model
        self.stats = tuple(s for s in STATS if s in stats)
        self.every, self.top_k = int(every), top_k
        self.targets: list[Target] = find_targets(model, include)
        self.step = 0
        self._state: _Step | None = None
        self._inputs: dict[str, InputCache] = {}

    @property
    def keys(self) -> list[str]:
        """Every weight this recorder can record."""
        return [k for t in self.targets for k in t.keys]

    # ------------------------------------------------------------------ public entry point
    @contextlib.contextmanager
    def record(self, groups=None) -> Iterator[Snapshot]:
        """Record the forward and backward run inside the block; the snapshot fills on exit."""
        step = self.step
        self.step += 1
        if step % self.every:
            yield Snapshot(step, recorded=False)
            return
        g = self._check_groups(groups)
        snap = Snapshot(step, groups=[] if g is None else [int(v) for v in torch.unique(g).tolist()])
        self._state = _Step(g)
        handles = self._install()
        try:
            yield snap
            self._finish(snap)
        finally:
            for h in handles:
                h.remove()
            self._state = None

    # ------------------------------------------------------------------ checks
    def _check_groups(self, groups) -> torch.Tensor | None:
        if groups is None:
            return None
        g = torch.as_tensor(groups)
        if g.dtype.is_floating_point or g.dtype.is_complex or g.dtype == torch.bool:
            raise ValueError(f"groups must hold integer group ids, got dtype {g.dtype}")
        if g.dim() != 1:
            raise ValueError(f"groups must be 1-D (one id per sample), got shape {tuple(g.shape)}")
        if g.numel() and int(g.min()) < 0:
            raise ValueError(f"group ids must be >= 0, got {int(g.min())}")
        for name, m in self.model.named_modules():
            if isinstance(m, _SAMPLE_MIXING) and m.training:
                raise ValueError(
                    f"groups were given but {name or 'model'} ({type(m).__name__}) is in training mode: it mixes "
                    "samples, so per-group gradients are undefined; use eval() for it or record without groups"
                )
        return g.long()

    def _check_batch(self, n: int, where: str) -> None:
        st = self._state
        if st.groups is not None and n != st.groups.numel():
            raise ValueError(f"groups has {st.groups.numel()} entries but {where} received a batch of {n} samples")

    # ------------------------------------------------------------------ hooks
    def _install(self) -> list:
        handles = []
        for t in self.targets:
            if t.adapter is not None:
                handles.append(t.module.register_forward_hook(self._adapter_forward(t)))
            else:
                handles.append(t.module.register_forward_pre_hook(self._generic_pre(t), with_kwargs=True))
                handles.append(t.module.register_forward_hook(self._generic_forward(t), with_kwargs=True))
        return handles

    def _adapter_forward(self, t: Target):
        key = t.keys[0]

        def hook(module, args, output):
            st = self._state
            if replay.replaying() or st is None or not isinstance(output, torch.Tensor) or not output.requires_grad:
                return None
            x = args[0].detach()
            self._check_batch(x.shape[0], f"'{t.name}' (dim 0 of its input)")
            st.calls[key] = st.calls.get(key, 0) + 1
            cached = False
            if not args[0].requires_grad:  # a data input: it may repeat (full-batch training)
                c = self._inputs.get(key)
                cached = c is not None and c.matches(x, st.groups)
                if cached:
                    st.cached_calls[key] = st.cached_calls.get(key, 0) + 1
                else:
                    st.new_inputs[key] = x
            box = [x]

            def on_delta(grad):
                self._reduce(t, box[0], grad, cached)
                box[0] = None

            output.register_hook(on_delta)
            return None

        return hook

    def _reduce(self, t: Target, x: torch.Tensor, grad: torch.Tensor, cached: bool) -> None:
        st, key, ad, m = self._state, t.keys[0], t.adapter, t.module
        if st is None:
            return
        n_out, n_in = t.shapes[0]
        n = grad.shape[0]
        rows = max(1, ad.rows_per_sample(m, grad))
        chunk = max(1, _CHUNK_ELEMENTS // (rows * (n_in + n_out)))
        cache = self._inputs.get(key) if cached else None
        act_known = cache is not None and cache.act is not None
        if (
            cache is not None
            and "grad" in self.stats
            and st.calls[key] == 1
            and n * rows < n_in
            and chunk >= n
            and (act_known or "act" not in self.stats)
        ):
            # cheapest exact route: σ(G_k) = σ(R_k Δ_k) with R_k from the unchanged input
            if cache.factors is None:
                cache.build_factors(self._split(ad.input_rows(m, x), 0))
            d_groups = self._split(ad.output_rows(m, grad), 0)
            st.factored[key] = d_groups
            if "delta" in self.stats:
                st.delta.setdefault(key, MatrixSpectra(st.k, n_out)).add(d_groups)
            return
        need_rows = bool({"act", "delta"} & set(self.stats)) and not (act_known and "delta" not in self.stats)
        if "grad" in self.stats:
            blocks = None if st.index is None else list(st.order.to(x.device).split(st.counts))
            formed = ad.group_grads(m, x, grad, [None] if blocks is None else blocks)
            if formed is not None:
                st.grad.setdefault(key, GradSpectra(st.k, n_in, n_out)).add_group_grads(formed)
                if not need_rows:
                    return
        else:
            formed = None
        want_a = ("grad" in self.stats and formed is None) or ("act" in self.stats and not act_known)
        for s in range(0, n, chunk):
            a_groups = self._split(ad.input_rows(m, x[s : s + chunk]), s) if want_a else None
            d_groups = self._split(ad.output_rows(m, grad[s : s + chunk]), s)
            if "grad" in self.stats and formed is None:
                st.grad.setdefault(key, GradSpectra(st.k, n_in, n_out)).add(a_groups, d_groups)
            if "act" in self.stats and not act_known:
                st.act.setdefault(key, MatrixSpectra(st.k, n_in)).add(a_groups)
            if "delta" in self.stats:
                st.delta.setdefault(key, MatrixSpectra(st.k, n_out)).add(d_groups)

    def _split(self, rows: torch.Tensor, start: int) -> list[torch.Tensor]:
        """Per-group row blocks ``(n_k·R, width)`` of per-sample rows ``(n, R, width)``."""
        st = self._state
        width = rows.shape[-1]
        if st.index is None:
            return [rows.reshape(-1, width)]
        if start == 0 and rows.shape[0] == st.index.shape[0]:
            order, counts = st.order.to(rows.device), st.counts
        else:
            idx = st.index[start : start + rows.shape[0]].to(rows.device)
            order = torch.argsort(idx, stable=True)
            counts = torch.bincount(idx, minlength=st.k).tolist()
        return [b.reshape(-1, width) for b in rows[order].split(counts)]

    def _generic_pre(self, t: Target):
        def hook(module, args, kwargs):
            if self._state is not None and not replay.replaying():
                dev = t.params[0].device
                module._autospec_rng = replay.capture_rng(dev)

        return hook

    def _generic_forward(self, t: Target):
        def hook(module, args, kwargs, output):
            st = self._state
            if replay.replaying() or st is None or not torch.is_grad_enabled():
                return None
            flat, _ = tree_flatten(output)
            live = [i for i, o in enumerate(flat) if isinstance(o, torch.Tensor) and o.requires_grad]
            if not live or "grad" not in self.stats:
                return None
            dims = batch_dims(module, flat)
            self._check_batch(flat[live[0]].shape[dims[live[0]]], f"'{t.name or 'model'}' ({type(module).__name__})")
            call = replay.start_call(args, kwargs, module._autospec_rng)
            st.replays.setdefault(t.name, []).append(call)
            for i in live:
                flat[i].register_hook(lambda g, i=i, call=call: call.deltas.__setitem__(i, g.detach()))
            return None

        return hook

    # ------------------------------------------------------------------ finishing a step
    def _finish(self, snap: Snapshot) -> None:
        nonfinite: list[str] = []
        for t in self.targets:
            if t.adapter is not None:
                self._finish_adapter(t, snap, nonfinite)
            else:
                self._finish_generic(t, snap, nonfinite)
        order = {k: i for i, k in enumerate(self.keys)}
        snap._keys = sorted({k for (k, _, _) in snap._values}, key=order.get)
        if nonfinite:
            warnings.warn(
                f"autospec: non-finite gradient at step {snap.step} in {', '.join(sorted(set(nonfinite)))}; "
                "its spectra are recorded as NaN",
                RuntimeWarning,
                stacklevel=4,
            )

    def _put(self, snap: Snapshot, key: str, stat: str, whole, per_group, nonfinite: list[str]) -> None:
        st = self._state
        if st.ids and not per_group:  # a single group: its part is the whole
            per_group = [whole]
        vals = [(WHOLE, whole)] + list(zip(st.ids, per_group))
        for gid, v in vals:
            arr = v.detach().cpu().numpy().astype(np.float64, copy=False) if isinstance(v, torch.Tensor) else v
            if self.top_k is not None:
                arr = arr[: self.top_k]
            if np.isnan(arr).any():  # an undefined spectrum is undefined throughout
                arr = np.full_like(arr, np.nan)
                nonfinite.append(key)
            snap._values[(key, stat, gid)] = arr

    def _finish_adapter(self, t: Target, snap: Snapshot, nonfinite: list[str]) -> None:
        st, key = self._state, t.keys[0]
        (n_out, n_in), calls = t.shapes[0], st.calls.get(key, 0)
        cache = self._inputs.get(key)
        if key in st.factored:
            d_groups = st.factored.pop(key)
            if key in st.grad:  # another call of the layer in this step: take the general route
                a_groups = self._split(t.adapter.input_rows(t.module, cache.x), 0)
                st.grad[key].add(a_groups, d_groups)
            else:
                self._put(snap, key, "grad", *cache.grad_spectra(d_groups, n_in, n_out), nonfinite)
        if key in st.grad:
            self._put(snap, key, "grad", *st.grad.pop(key).finalize(), nonfinite)
        if key in st.delta:
            self._put(snap, key, "delta", *st.delta.pop(key).finalize(), nonfinite)
        all_cached = calls and st.cached_calls.get(key, 0) == calls
        if not all_cached:
            self._inputs.pop(key, None)
            if calls == 1 and key in st.new_inputs:
                cache = self._inputs[key] = InputCache(st.new_inputs[key], st.groups)
            else:
                cache = None
        if "act" in self.stats and calls:
            if all_cached and cache.act is not None:
                whole, per = cache.act
            elif key in st.act:
                whole, per = st.act.pop(key).finalize()
                if cache is not None:
                    cache.act = (whole, per)
            else:
                return
            self._put(snap, key, "act", whole, per, nonfinite)

    def _finish_generic(self, t: Target, snap: Snapshot, nonfinite: list[str]) -> None:
        st = self._state
        calls = st.replays.pop(t.name, [])
        acc: list[torch.Tensor | None] = [None] * len(t.keys)
        with replay.replay_scope():
            for call in calls:
                grads = replay.replay_grads(t.module, call, t.params, st.index, st.k)
                if grads is None:
                    continue
                for j, g in enumerate(grads):
                    acc[j] = add_formed(acc[j], g.reshape(g.shape[0], t.shapes[j][0], -1))
        snap._grad_only.update(t.keys)
        for key, g in zip(t.keys, acc):
            if g is not None:
                self._put(snap, key, "grad", *formed_spectra(g, st.k), nonfinite)
