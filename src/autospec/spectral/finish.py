"""The job that finishes one recorded step: work items → singular values → the snapshot.

:func:`finish_job` is called at the end of the step. For host tensors it only packages the work:
the reduction (:mod:`.reduce`) and the singular values (:mod:`.solve`) both run in the job, on the
worker. For device tensors (CUDA) the reduction runs at once on the device — products and QR
cores are cheap there — and only the small cores are copied, without blocking, to pinned host
memory; the job waits for a CUDA event recorded after the copies and takes σ on the host (a
float64 SVD of small matrices is faster on the CPU than on the GPU).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .options import RecorderOptions
from .reduce import cached_grad_mats, grad_mats, rows_mats, sharing_mats
from .snapshot import Snapshot
from .solve import Solved, SolveSettings, solve, store
from .work import (
    CachedGradWork,
    GradWork,
    Mats,
    ReusedWork,
    RowsWork,
    SharingWork,
    Work,
    nbytes,
    to_host,
)


def reduce_work(w: Work) -> list[Mats]:
    """Stage 1 for one work item (``ReusedWork`` has nothing to reduce)."""
    if isinstance(w, GradWork):
        return grad_mats(w)
    if isinstance(w, CachedGradWork):
        return cached_grad_mats(w)
    if isinstance(w, RowsWork):
        return rows_mats(w)
    if isinstance(w, SharingWork):
        return sharing_mats(w)
    return []


def _on_device(works: list[Work]) -> torch.device | None:
    for w in works:
        for value in vars(w).values():
            items = value if isinstance(value, list) else [value]
            for t in items:
                if isinstance(t, torch.Tensor) and t.device.type != "cpu":
                    return t.device
    return None


def finish_job(
    snap: Snapshot,
    works: list[Work],
    order: list[str],
    options: RecorderOptions,
    warm: dict[tuple[str, int], torch.Tensor],
    *,
    device: torch.device | None = None,
) -> tuple[Callable[[], None], int, Any]:
    """``(run, bytes held, CUDA event or None)`` for the step's remaining work (``device``: where
    the step's tensors are; None = find out)."""
    if device is None:
        device = _on_device(works)
    elif device.type == "cpu":
        device = None
    event = None
    reduced: list[tuple[Work, list[Mats]]] | None = None
    if device is not None and device.type == "cuda":
        reduced = [(w, reduce_work(w)) for w in works]
        for _, mats in reduced:
            for m in mats:
                to_host(m, pinned=True)
        event = torch.cuda.Event()  # type: ignore[no-untyped-call]
        event.record(torch.cuda.current_stream(device))
        held = sum(nbytes(m) for _, ms in reduced for m in ms)
    elif device is not None:  # another accelerator: copy the work itself to the host
        for w in works:
            to_host(w, pinned=False)
        held = sum(nbytes(w) for w in works)
    else:
        held = sum(nbytes(w) for w in works)
    settings = SolveSettings(options.top_k, options.tol)

    def run() -> None:
        try:
            items = reduced if reduced is not None else [(w, reduce_work(w)) for w in works]
            solved = solve([m for _, ms in items for m in ms], settings, warm)
            _keep_act(works, solved)
            solved += _reused(works)
            layouts = {w.key: w.layout for w in works if isinstance(w, SharingWork)}
            bad = store(snap, solved, layouts)
            if bad:
                snap.warn(
                    f"autospec: non-finite gradient at step {snap.step} in {', '.join(sorted(set(bad)))}; "
                    "its spectra are recorded as NaN"
                )
            snap.finish(order)
        except BaseException as err:
            snap.fail(err)
            raise

    return run, held, event


def _keep_act(works: list[Work], solved: list[Solved]) -> None:
    """σ(A) of a data input that may come back: kept in its input cache for later steps."""
    for w in works:
        if isinstance(w, RowsWork) and w.stat == "act" and w.cache is not None:
            w.cache.act = {  # type: ignore[attr-defined]
                s.target.group: s for s in solved if s.target.key == w.key and s.target.stat == "act"
            }


def _reused(works: list[Work]) -> list[Solved]:
    out: list[Solved] = []
    for w in works:
        if isinstance(w, ReusedWork):
            act = getattr(w.source, "act", None)
            if act is None:
                raise RuntimeError(f"σ(A) of {w.key!r} from an earlier step is missing (that step's spectra failed)")
            out += [Solved(s.target, np.array(s.values), s.rank) for s in act.values()]
    return out
