"""SpectralRecorder: exact per-layer, per-group spectra of G = AᵀΔ, A and Δ during training.

How one recorded step works
---------------------------
On entering ``record()`` the recording plan is looked up (re-resolved whenever the model's
modules, parameters or ``requires_grad`` flags changed) and hooks are installed; on leaving they
are removed, so an unrecorded step costs nothing. A forward hook on each adapter layer keeps a
reference to that call's input (the tensor autograd already saved) and registers a hook on that
call's output tensor, which receives Δ during the backward. The closure binds Δ to the A of the
same call, so a module called several times per step (RNN cells over time, shared weights) pairs
correctly in any backward order — this subsumes the LIFO stack of a hook-per-module design, and tensor hooks,
unlike full backward hooks, survive in-place ops such as ``ReLU(inplace=True)``. Calls are
buffered and reduced together into owned tensors (:mod:`.step`). Modules without an adapter go
through the exact generic replay (:mod:`.replay`), grad only.

On leaving the block the step's work is handed to a worker thread (:mod:`.pipeline`), which takes
the singular values — batched by shape across layers — while training goes on;
``snapshot.singular_values`` waits for its own values. ``sync=True`` computes them before the
block exits (debugging); both modes give bit-identical spectra.

The first recorded step (and any step after the configuration changed) is also checked
(:mod:`.verify`): every use of a recorded weight must be seen, and with groups, samples must not
interact (:mod:`.probe`). A failed check raises before the backward runs.

Group spectra use the loss's own normalisation: with a mean-reduced loss Δ carries 1/N (not
1/N_g), so Σ_g G_g = G, the gradient of this backward.
"""

from __future__ import annotations

import collections
import contextlib
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten
from torch.utils.hooks import RemovableHandle

from . import replay
from .finish import finish_job
from .groups import GroupCache, validate_groups
from .input_cache import InputCache
from .options import STATS, IncludeItem, validate_options
from .pipeline import PIPELINE, Job, run_with_threads
from .registry import SampleLayout, registry_version, route_state, sample_layouts
from .schedules import ScheduleLike, is_scheduled
from .snapshot import Snapshot
from .step import Step
from .targets import AdapterUse, GenericUse, Plan, check_include, resolve
from .verify import Verifier, signature
from .work import Work


class SpectralRecorder:
    """Record σ(G), σ(A), σ(Δ) of a model's ≥2-D weights, whole batch and per group.

    Parameters
    ----------
    model : the network.
    stats : ``"grad"``, ``"act"``, ``"delta"`` or a subset. ``act``/``delta`` exist for adapter
        layers (Linear, Conv1d/2d/3d and the autospec.nn modules built from them).
    include : a name or a list of: parameter names, module names (a module includes its subtree),
        fnmatch patterns of either (``"encoder.*"``), module types. Default: every weight. An item
        matching no weight matrix raises.
    every : record every k-th ``record()`` call; others yield an empty snapshot at no cost.
    top_k : keep only the k largest singular values.
    batch_dim : the sample axis of module inputs/outputs: an int for all, or a mapping
        ``{module name or pattern: axis}`` (others 0; ``""`` is the model's own output). Never
        guessed from sizes; modules that declare their layout (``nn.LSTM(batch_first=...)``,
        ``nn.MultiheadAttention``) follow it.
    assume_independent : skip the sample-coupling probes (per-group spectra are then only as
        right as that assumption).
    subspaces : also keep the top-k left/right singular vectors of each group's gradient
        (:meth:`Snapshot.principal_angles`).
    schedule : when to record instead of ``every``: an int k, a list of steps, a callable
        ``step -> bool`` or a :mod:`~autospec.spectral.schedules` object (``log_spaced(999, 50)``).
    sync : compute the spectra before the ``record()`` block exits (debugging). Default: on a
        worker thread while training goes on (bit-identical results).
    static_inputs : None (default) detects an unchanged data input by identity and version
        counter; True declares full-batch training (reuse from the first step on); False never
        reuses (see :mod:`.input_cache` for what identity cannot see).
    method : ``"exact"`` (default), ``"iterative"`` (top-k σ(G) of every weight by warm-started
        subspace iteration, with error bounds; needs ``top_k``) or ``"auto"`` (iterative only for
        weights whose smaller side is at least :data:`~.options.WIDE`).
    tol : iteration stops when every error bound is at most ``tol · σ₁``.
    sharing : also record σ of the gradient per share of its weight-sharing dimension (per time
        step of a recurrent cell, per token, per convolution output position).
    queue_bytes : memory cap of the work waiting for the worker (back-pressure beyond it).
    worker_threads : intra-op threads used to compute the spectra.
    """

    def __init__(
        self,
        model: nn.Module,
        stats: str | Sequence[str] = STATS,
        include: IncludeItem | Iterable[IncludeItem] | None = None,
        every: int = 1,
        top_k: int | None = None,
        *,
        batch_dim: int | Mapping[str, int] = 0,
        assume_independent: bool = False,
        subspaces: int | None = None,
        schedule: ScheduleLike | None = None,
        sync: bool = False,
        static_inputs: bool | None = None,
        method: str = "exact",
        tol: float = 1e-6,
        sharing: bool = False,
        queue_bytes: int = 256 << 20,
        worker_threads: int = 1,
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.options = validate_options(
            stats=stats, include=include, every=every, top_k=top_k, batch_dim=batch_dim,
            assume_independent=assume_independent, subspaces=subspaces, schedule=schedule, sync=sync,
            static_inputs=static_inputs, method=method, tol=tol, sharing=sharing, queue_bytes=queue_bytes,
            worker_threads=worker_threads,
        )  # fmt: skip
        self.model = model
        self.stats = self.options.stats
        self.every, self.top_k = self.options.every, self.options.top_k
        self.schedule = self.options.schedule
        self.options.axes.check_names(model)
        check_include(model, self.options.include)
        self._plan_key: tuple[Any, ...] | None = None
        self._plan_cache: Plan | None = None
        self._plan()  # refuses (e.g. sparse gradients) at construction, not at the first step
        self.step = 0
        self._state: Step | None = None
        self._inputs: dict[str, InputCache] = {}
        self._groups = GroupCache()
        self._warm: dict[tuple[str, int], torch.Tensor] = {}  # top-k warm starts (worker side)
        self._jobs: collections.deque[tuple[Job, Snapshot]] = collections.deque()
        self._verified: tuple[Any, ...] | None = None
        self._pending: dict[int, list[replay.CallState]] = {}
        self._force = False

    def _plan(self, modules: list[nn.Module] | None = None) -> Plan:
        """The recording plan, resolved again whenever modules, parameters or flags changed."""
        modules = list(self.model.modules()) if modules is None else modules
        key = (
            registry_version(),
            [(id(m), route_state(m)) for m in modules],
            # every module's own parameters (what model.parameters() walks, without a second walk)
            [(id(p), p.requires_grad) for m in modules for p in m._parameters.values() if p is not None],
        )
        if key != self._plan_key or self._plan_cache is None:
            plan = resolve(self.model, self.options)
            if plan.refused:
                raise ValueError(
                    "autospec: cannot record "
                    + "; ".join(f"{s.key!r} ({s.module or 'the model'}): {s.reason}" for s in plan.refused)
                )
            self._plan_key, self._plan_cache = key, plan
        return self._plan_cache

    def records_at(self, step: int) -> bool:
        """Whether the ``record()`` call with this step index records (the schedule)."""
        return is_scheduled(self.schedule, step)

    @contextlib.contextmanager
    def forced(self) -> Iterator[None]:
        """Record the next ``record()`` calls whatever the schedule says (e.g. to rebuild input
        caches after resuming a run)."""
        before, self._force = self._force, True
        try:
            yield
        finally:
            self._force = before

    def wait(self) -> None:
        """Wait until every step recorded so far has its spectra; raise the first failure."""
        while self._jobs:
            job, _ = self._jobs[0]
            job.done.wait()
            self._raise_failed()

    def _raise_failed(self) -> None:
        while self._jobs and self._jobs[0][0].done.is_set():
            job, snap = self._jobs.popleft()
            if job.error is not None:
                raise RuntimeError(
                    f"autospec: computing the spectra of step {snap.step} failed: {job.error}"
                ) from job.error

    @property
    def keys(self) -> list[str]:
        """Every weight this recorder records now (re-resolved: requires_grad changes count)."""
        return list(self._plan().slots)

    # ------------------------------------------------------------------ public entry point
    @contextlib.contextmanager
    def record(self, groups: object = None) -> Iterator[Snapshot]:
        """Record the forward and backward run inside the block; the snapshot fills on exit."""
        if self._state is not None:
            raise RuntimeError("record() blocks of one SpectralRecorder cannot nest (this one is already open)")
        self._raise_failed()
        step = self.step
        self.step += 1
        if not self._force and not self.records_at(step):
            yield Snapshot(step, recorded=False)
            return
        gi = self._groups.get(groups, validate_groups)
        modules = list(self.model.modules())
        plan = self._plan(modules)
        snap = Snapshot(step, groups=list(gi.ids))
        self._state = Step(plan, gi, self.options, self._inputs)
        sig = signature(modules, plan, gi.grouped)
        check = (
            Verifier(self.model, plan, gi, self.options.axes, not self.options.assume_independent)
            if sig != self._verified
            else None
        )
        handles = self._install(plan)
        try:
            with check.active() if check is not None else contextlib.nullcontext():
                yield snap
            self._finish(snap)
            if check is not None and not check.inconclusive:
                self._verified = sig
        finally:
            for h in handles:
                h.remove()
            self._state = None
            self._pending.clear()

    # ------------------------------------------------------------------ hooks
    def _install(self, plan: Plan) -> list[RemovableHandle]:
        handles = [u.module.register_forward_hook(self._adapter_hook(u)) for u in plan.adapters]
        if "grad" in self.options.stats:
            for g in plan.generics:
                handles.append(g.module.register_forward_pre_hook(self._generic_pre(g), with_kwargs=True))
                handles.append(g.module.register_forward_hook(self._generic_hook(g), with_kwargs=True))
        return handles

    def _check_batch(self, n: int, where: str) -> None:
        st = self._state
        if st is not None and st.groups.grouped and n != st.groups.n:
            raise ValueError(
                f"groups has {st.groups.n} entries but {where} received a batch of {n} samples "
                "(the sample axis is set by batch_dim=; a PackedSequence's .data has one row per token)"
            )

    def _adapter_hook(self, u: AdapterUse) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            st = self._state
            if replay.internal() or st is None or not isinstance(output, torch.Tensor) or not output.requires_grad:
                return
            x = args[0]
            problem = u.adapter.input_problem(module, x)
            if problem is not None:
                raise ValueError(f"autospec: cannot record {u.key!r} at '{u.name}': {problem}")
            axis = u.axis % x.dim()
            xs = x.detach() if axis == 0 else x.detach().movedim(axis, 0)
            if xs.dtype != output.dtype and xs.is_floating_point():  # autocast: the operand the layer used
                xs = xs.to(output.dtype)
            if st.groups.grouped and xs.shape[0] != st.groups.n:
                self._check_batch(xs.shape[0], f"'{u.name}' (dim {axis} of its input)")
            call = st.add_call(u, x, xs, data_input=not x.requires_grad)

            def on_delta(grad: torch.Tensor) -> None:
                if not replay.internal() and self._state is st:
                    st.on_delta(call, grad.detach() if axis == 0 else grad.detach().movedim(axis, 0))

            output.register_hook(on_delta)  # type: ignore[no-untyped-call]

        return hook

    def _generic_pre(self, g: GenericUse) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if self._state is not None and not replay.internal():
                state = replay.capture_state(module, g.params[0].device)
                self._pending.setdefault(id(module), []).append(state)

        return hook

    def _generic_hook(self, g: GenericUse) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
            st = self._state
            if replay.internal() or st is None:
                return
            pending = self._pending.get(id(module))
            state = pending.pop() if pending else None
            if state is None or not torch.is_grad_enabled():
                return
            flat = tree_flatten(output)[0]
            layouts = sample_layouts(module, output, g.axis)
            live = [i for i, o in enumerate(flat) if isinstance(o, torch.Tensor) and o.requires_grad]
            if not live:
                return
            for i in live:
                self._check_layout(g, module, flat[i], layouts[i])
            call = replay.start_call(args, kwargs, state, layouts)
            st.replays.setdefault(id(g), []).append(call)
            for i in live:
                flat[i].register_hook(_delta_setter(call, i))

        return hook

    def _check_layout(self, g: GenericUse, module: nn.Module, t: torch.Tensor, layout: SampleLayout | None) -> None:
        st = self._state
        if st is None or not st.groups.grouped:
            return
        where = f"'{g.name or 'the model'}' ({type(module).__name__})"
        if layout is None or t.dim() == 0:
            raise ValueError(
                f"autospec: {where} returns a tensor of shape {tuple(t.shape)} with no sample axis: "
                "its gradient cannot be split by group"
            )
        size = t.shape[layout.axis % t.dim()]
        if layout.ids is not None:
            return
        self._check_batch(size, where)

    # ------------------------------------------------------------------ finishing a step
    def _finish(self, snap: Snapshot) -> None:
        st = self._state
        assert st is not None

        def hand_over(works: list[Work], keys: list[str], grad_only: list[str]) -> None:
            snap.mark_grad_only(grad_only)
            if not keys:
                seen_forward = bool(st.calls) or any(st.replays.values())
                why = (
                    "the forward ran inside the record() block but not its backward"
                    if seen_forward
                    else "run the model's forward AND backward inside the record() block "
                    "(or no recorded weight took part)"
                )
                warnings.warn(
                    f"autospec: nothing was recorded at step {snap.step}: {why}", RuntimeWarning, stacklevel=6
                )
            self._submit(snap, works, keys, list(st.plan.slots))

        st.finish(hand_over)

    def _submit(self, snap: Snapshot, works: list[Work], keys: list[str], order: list[str]) -> None:
        st = self._state
        device = st.device if st is not None else None
        run, nbytes, event = finish_job(snap, works, order, self.options, self._warm, device=device)
        job = Job(run, nbytes, self.options.worker_threads, self.options.queue_bytes, event)
        if self.options.sync:
            run_with_threads(job)
            if job.error is not None:
                raise job.error
            snap.wait()  # issues the step's warnings (non-finite gradients) now
            return
        snap.expect(keys)
        PIPELINE.submit(job)
        self._jobs.append((job, snap))


def _delta_setter(call: replay.ReplayCall, i: int) -> Any:
    def hook(grad: torch.Tensor) -> None:
        if replay.internal():
            return
        g = grad.detach()
        call.deltas[i] = g if i not in call.deltas else call.deltas[i] + g

    return hook
