"""The recorder's options, validated once at construction (a bad value never waits for a step)."""

from __future__ import annotations

import fnmatch
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .schedules import Every, as_schedule

STATS = ("grad", "act", "delta")
METHODS = ("exact", "iterative", "auto")
#: ``method="auto"``: the smallest side of a weight from which top-k iteration replaces exact σ(G)
WIDE = 512
IncludeItem = str | type[nn.Module]


def positive_int(name: str, value: object, allow_none: bool = False) -> int | None:
    """``value`` as an int >= 1; bools, floats and strings are refused (not rounded)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        kind = "an integer >= 1" + (" or None" if allow_none else "")
        raise TypeError(f"{name} must be {kind}, got {value!r} ({type(value).__name__})")
    if int(value) < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _stats(stats: str | Sequence[str]) -> tuple[str, ...]:
    items = (stats,) if isinstance(stats, str) else tuple(stats)
    bad = [s for s in items if s not in STATS]
    if bad or not items:
        raise ValueError(f"stats must be a non-empty subset of {STATS}, got {items}")
    return tuple(s for s in STATS if s in items)


def _include(include: IncludeItem | Iterable[IncludeItem] | None) -> tuple[IncludeItem, ...] | None:
    if include is None:
        return None
    items: tuple[object, ...] = (include,) if isinstance(include, str | type) else tuple(include)
    if not items:
        raise ValueError("include is empty: nothing would be recorded (use None to record every weight)")
    for item in items:
        if not (isinstance(item, str) or (isinstance(item, type) and issubclass(item, nn.Module))):
            raise TypeError(
                f"include items must be parameter/module names, fnmatch patterns or nn.Module types; got {item!r}"
            )
    return items  # type: ignore[return-value]


def _axis(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer axis, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class SampleAxes:
    """The sample axis of each module's input and output (``batch_dim`` option).

    ``default`` applies to every module not named in ``per_module`` (exact module names or
    fnmatch patterns; ``""`` is the model itself). Modules whose own configuration says where
    samples are (``nn.LSTM(batch_first=...)``, ``nn.MultiheadAttention``) follow it for their outputs.
    """

    default: int = 0
    per_module: dict[str, int] = field(default_factory=dict)

    def for_module(self, name: str) -> int:
        if name in self.per_module:
            return self.per_module[name]
        for pattern, axis in self.per_module.items():
            if fnmatch.fnmatchcase(name, pattern):
                return axis
        return self.default

    def check_names(self, model: nn.Module) -> None:
        names = [n for n, _ in model.named_modules()]
        for pattern in self.per_module:
            if not any(n == pattern or fnmatch.fnmatchcase(n, pattern) for n in names):
                raise ValueError(f"batch_dim names module {pattern!r}, which is not in the model")


def _sample_axes(batch_dim: int | Mapping[str, int]) -> SampleAxes:
    if isinstance(batch_dim, Mapping):
        per = {}
        for k, v in batch_dim.items():
            if not isinstance(k, str):
                raise TypeError(f"batch_dim keys must be module names, got {k!r}")
            per[k] = _axis(f"batch_dim[{k!r}]", v)
        return SampleAxes(0, per)
    return SampleAxes(_axis("batch_dim", batch_dim))


@dataclass(frozen=True)
class RecorderOptions:
    stats: tuple[str, ...]
    include: tuple[IncludeItem, ...] | None
    every: int
    top_k: int | None
    axes: SampleAxes
    assume_independent: bool
    subspaces: int | None
    schedule: Any = None  # callable step -> bool
    sync: bool = False
    static_inputs: bool | None = None
    method: str = "exact"
    tol: float = 1e-6
    sharing: bool = False
    queue_bytes: int = 256 << 20
    worker_threads: int = 1

    def iterative(self, shape: tuple[int, int]) -> bool:
        """Whether σ(G) of a weight of this ``(n_out, n_in)`` shape is found by top-k iteration."""
        if self.method == "exact" or self.top_k is None or self.top_k >= min(shape):
            return False
        return self.method == "iterative" or min(shape) >= WIDE


def _flag(name: str, value: object, allow_none: bool = False) -> bool | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False{' or None' if allow_none else ''}, got {value!r}")
    return value


def _method(method: object, top_k: int | None, tol: object) -> tuple[str, float]:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method != "exact" and top_k is None:
        raise ValueError(f"method={method!r} finds the top-k singular values: give top_k=")
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not 0 < float(tol) < 1:
        raise ValueError(f"tol must be a number in (0, 1), got {tol!r}")
    return str(method), float(tol)


def validate_options(
    *,
    stats: str | Sequence[str],
    include: IncludeItem | Iterable[IncludeItem] | None,
    every: object,
    top_k: object,
    batch_dim: int | Mapping[str, int],
    assume_independent: object,
    subspaces: object,
    schedule: object = None,
    sync: object = False,
    static_inputs: object = None,
    method: object = "exact",
    tol: object = 1e-6,
    sharing: object = False,
    queue_bytes: object = 256 << 20,
    worker_threads: object = 1,
) -> RecorderOptions:
    if not isinstance(assume_independent, bool):
        raise TypeError(f"assume_independent must be True or False, got {assume_independent!r}")
    every_i = positive_int("every", every)
    assert every_i is not None
    if schedule is not None and every_i != 1:
        raise ValueError("give either every= or schedule=, not both (every=k is schedule=k)")
    top_k_i = positive_int("top_k", top_k, allow_none=True)
    method_s, tol_f = _method(method, top_k_i, tol)
    stat_names = _stats(stats)
    k = positive_int("subspaces", subspaces, allow_none=True)
    if k is not None and "grad" not in stat_names:
        raise ValueError("subspaces needs 'grad' in stats (they are singular vectors of the gradient)")
    return RecorderOptions(
        stats=stat_names,
        include=_include(include),
        every=every_i,
        top_k=top_k_i,
        axes=_sample_axes(batch_dim),
        assume_independent=assume_independent,
        subspaces=k,
        schedule=Every(every_i) if schedule is None else as_schedule(schedule),  # type: ignore[arg-type]
        sync=bool(_flag("sync", sync)),
        static_inputs=_flag("static_inputs", static_inputs, allow_none=True),
        method=method_s,
        tol=tol_f,
        sharing=bool(_flag("sharing", sharing)),
        queue_bytes=int(positive_int("queue_bytes", queue_bytes) or 0),
        worker_threads=int(positive_int("worker_threads", worker_threads) or 1),
    )
