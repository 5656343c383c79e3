"""Recording schedules: at which ``record()`` calls (steps) a recorder records.

A schedule is any callable ``step -> bool`` (step = 0-based index of the ``record()`` call; an
epoch in full-batch training), as Cockpit's ``track_schedule``. The built-in ones are small
objects that also list their steps and print what they are:

* :func:`every` — every k-th step from ``offset`` (``every(1)``: each step; the recorder's
  ``every=k`` option is ``every(k)``);
* :func:`log_spaced` — ``count`` steps spread logarithmically over ``0..last`` (dense early,
  sparse late: most of a 1000-epoch run's dynamics happen in its first epochs), always with 0
  and ``last``;
* :func:`at` — an explicit list of steps.

:func:`as_schedule` turns the recorder's ``schedule=`` argument into one of these (an int k means
``every(k)``, a list of ints ``at(...)``, a callable is used as it is).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable

import numpy as np

ScheduleLike = int | Iterable[int] | Callable[[int], bool]


def _step(name: str, value: object, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if int(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


class Schedule:
    """A set of recorded steps; ``schedule(step)`` is True at those steps."""

    def __call__(self, step: int) -> bool:
        raise NotImplementedError

    def steps(self, n: int) -> list[int]:
        """The recorded steps among ``0..n-1``."""
        return [s for s in range(n) if self(s)]


class Every(Schedule):
    def __init__(self, k: int, offset: int = 0):
        self.k = _step("every", k, 1)
        self.offset = _step("offset", offset)

    def __call__(self, step: int) -> bool:
        return step >= self.offset and (step - self.offset) % self.k == 0

    def __repr__(self) -> str:
        return f"every({self.k})" if not self.offset else f"every({self.k}, offset={self.offset})"


class At(Schedule):
    def __init__(self, steps: Iterable[int]):
        chosen = [_step("a scheduled step", s) for s in steps]
        if not chosen:
            raise ValueError("an explicit schedule needs at least one step")
        self.chosen = frozenset(chosen)

    def __call__(self, step: int) -> bool:
        return step in self.chosen

    def steps(self, n: int) -> list[int]:
        return sorted(s for s in self.chosen if s < n)

    def __repr__(self) -> str:
        return f"at({sorted(self.chosen)})"


def every(k: int, offset: int = 0) -> Every:
    """Record at steps ``offset, offset + k, offset + 2k, …``."""
    return Every(k, offset)


def at(steps: Iterable[int]) -> At:
    """Record exactly at the given steps (integers >= 0)."""
    return At(steps)


def log_spaced(last: int, count: int) -> At:
    """``min(count, last + 1)`` steps from 0 to ``last`` spaced logarithmically: every step early
    on (0, 1, 2, …), ever sparser later; 0 and ``last`` always included. Where rounding merges
    early grid points, the smallest unused steps take their place."""
    last = _step("last", last)
    count = _step("count", count, 1)
    if count == 1 or last == 0:
        return At([0])
    # geometric grid on 1..last+1, shifted to 0..last: step 0 first, then 1, 2, ... growing
    raw = np.rint(np.geomspace(1, last + 1, count)).astype(np.int64) - 1
    chosen = {int(s) for s in raw} | {0, last}
    # rounding merges early points: fill with the smallest unused steps (dense early is the point)
    small = 0
    while len(chosen) < min(count, last + 1):
        chosen.add(small)
        small += 1
    return At(sorted(chosen))


def as_schedule(value: ScheduleLike) -> Callable[[int], bool]:
    """The recorder's ``schedule=`` argument as a callable ``step -> bool``."""
    if isinstance(value, Schedule):
        return value
    if isinstance(value, bool):
        raise TypeError("schedule must be an int k, a list of steps or a callable step -> bool, got a bool")
    if isinstance(value, numbers.Integral):
        return Every(int(value))
    if callable(value):
        return value
    if isinstance(value, str | bytes):
        raise TypeError(f"schedule must be an int k, a list of steps or a callable step -> bool, got {value!r}")
    if isinstance(value, Iterable):
        return At(value)
    raise TypeError(
        f"schedule must be an int k, a list of steps or a callable step -> bool, got {type(value).__name__}"
    )


def is_scheduled(schedule: Callable[[int], bool], step: int) -> bool:
    """``schedule(step)`` as a strict bool (a callable returning something else is an error)."""
    out = schedule(step)
    if isinstance(out, bool | np.bool_):
        return bool(out)
    raise TypeError(f"a recording schedule must return True or False, got {out!r} at step {step}")
