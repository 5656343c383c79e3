"""The session's recorders: the main one (whole batch + groups) and the optional per-subject one."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from fnmatch import fnmatchcase

import torch
from torch import nn

from ..errors import InputError
from ..spectral import Snapshot, SpectralRecorder
from ..spectral.schedules import Schedule, at, every, log_spaced
from .config import RecordingSettings


@contextlib.contextmanager
def recording(
    main: SpectralRecorder, sub: SpectralRecorder | None, groups: object, samples: object
) -> Iterator[tuple[Snapshot, Snapshot | None]]:
    """Both recorders around one forward + backward; yields ``(snapshot, subject snapshot)``."""
    with main.record(groups=groups) as snap:
        if sub is None:
            yield snap, None
            return
        # Closing the inner block replays generic-path modules (e.g. LearnedPositions) while the
        # outer recorder's hooks are installed; the recorders share a replay scope, so the outer
        # one ignores those calls (tests/test_training.py::test_two_recorders_match_separate_recording).
        with sub.record(groups=samples) as sub_snap:
            yield snap, sub_snap


def check_subject_keys(patterns: Iterable[str] | None, keys: list[str]) -> None:
    for p in patterns or ():
        if not any(k == p or fnmatchcase(k, p) for k in keys):
            raise InputError(
                f"run config field recording.subject_keys: {p!r} matches no recordable weight "
                f"(recordable: {', '.join(keys)})"
            )


def schedule_of(rec: RecordingSettings, epochs: int) -> Schedule:
    """The epochs to record: ``recording.schedule`` if given, else every ``recording.every``-th."""
    spec = rec.schedule
    if spec is None:
        return every(rec.every)
    if "every" in spec:
        return every(spec["every"])
    if "log" in spec:
        return log_spaced(max(0, epochs - 1), spec["log"])
    return at(spec["epochs"])


class Recorders:
    """``main`` records ``stats`` per group; ``sub`` (recording.subjects) one group per sample."""

    def __init__(self, model: nn.Module, rec: RecordingSettings, epochs: int) -> None:
        self.schedule = schedule_of(rec, epochs)
        self.main = SpectralRecorder(
            model, stats=rec.stats, top_k=rec.top_k, schedule=self.schedule, sync=not rec.asynchronous
        )
        self.sub: SpectralRecorder | None = None
        if rec.subjects:
            check_subject_keys(rec.subject_keys, self.main.keys)
            self.sub = SpectralRecorder(
                model,
                stats=rec.subject_stats,
                include=rec.subject_keys,
                top_k=rec.top_k,
                schedule=self.schedule,
                sync=not rec.asynchronous,
            )

    @property
    def active(self) -> list[SpectralRecorder]:
        return [r for r in (self.main, self.sub) if r is not None]

    def records_next(self) -> bool:
        """Whether the next ``record()`` call records (the recorders share the schedule)."""
        return self.main.records_at(self.main.step)

    def steps(self) -> dict[str, int]:
        out = {"main": self.main.step}
        if self.sub is not None:
            out["subjects"] = self.sub.step
        return out

    def restore(self, steps: dict[str, int]) -> None:
        self.main.step = steps["main"]
        if self.sub is not None:
            self.sub.step = steps["subjects"]

    def record(
        self, groups: torch.Tensor | None, samples: torch.Tensor
    ) -> contextlib.AbstractContextManager[tuple[Snapshot, Snapshot | None]]:
        """Context manager around one forward + backward; yields ``(snapshot, subject snapshot)``."""
        return recording(self.main, self.sub, groups, samples)

    def prime(self, step: Callable[[], None], model: nn.Module, device: torch.device) -> None:
        """Rebuild the recorders' input caches after a resume by running ``step`` once, recorded.

        A recorder reuses work on a layer input equal to the last recorded step's (full-batch
        training) by an exact route whose float64 results may differ from the general route in
        the last bits. An uninterrupted run has that cache; a resumed one would not, and its
        spectra would not be byte-identical. The cache depends only on that step's input batch
        and groups, so ``step`` — one recorded forward + backward on that batch with those
        groups — rebuilds it. Its snapshot is dropped; gradients, RNG states and the recorders'
        step counters are restored.
        """
        steps = [r.step for r in self.active]
        devices = [device.index or 0] if device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices), contextlib.ExitStack() as forced:
                for r in self.active:
                    forced.enter_context(r.forced())  # a recording step whatever the schedule says
                step()
        finally:
            model.zero_grad(set_to_none=True)
            for r, s in zip(self.active, steps):
                r.step = s
