"""Spectra off the critical path: a worker thread finishes recorded steps while training goes on.

A recorded step ends by handing a :class:`Job` (its owned work items, see :mod:`.work`) to the
process-wide :class:`Pipeline`: one worker thread takes jobs first in, first out, runs the linear
algebra (LAPACK releases the GIL, so training proceeds meanwhile) and fills the step's snapshot;
readers of the snapshot wait for it (:meth:`~.snapshot.Snapshot.wait`).

* **Bounded**: the queue holds at most ``queue_bytes`` of work (the recorder's option) and
  :data:`MAX_JOBS` jobs; a step that would exceed either waits until the worker has caught up
  (back-pressure). A single job larger than the cap still runs, alone.
* **Deterministic**: jobs run one at a time in submission order, each with the same number of
  intra-op threads (``worker_threads``, default 1) whether it runs on the worker or inline
  (``sync=True``), so the spectra are bit-identical in both modes
  (``tests/test_spectral_async.py``). State carried from step to step (σ of an unchanged input,
  warm starts of top-k iteration) is produced and consumed in that order.
* **CUDA**: a job's tensors were copied to pinned host memory without blocking; the job carries a
  CUDA event recorded after the copies, and the worker waits on that event, not the step.
* **Errors** of a job are stored in its snapshot (every read re-raises) and in the recorder
  (the next ``record()`` raises), never lost.
"""

from __future__ import annotations

import atexit
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

MAX_JOBS = 16


@dataclass
class Job:
    """A step's remaining work: ``run()`` is called once, on the worker or inline."""

    run: Callable[[], None]
    nbytes: int
    threads: int
    cap: int  # the submitting recorder's queue_bytes
    event: Any = None  # torch.cuda.Event recorded after the job's device-to-host copies
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


def run_with_threads(job: Job) -> None:
    """Run ``job`` with ``job.threads`` intra-op threads (restored afterwards)."""
    before = torch.get_num_threads()
    if before != job.threads:
        torch.set_num_threads(job.threads)
    try:
        if job.event is not None:
            job.event.synchronize()
        job.run()
    except BaseException as err:  # stored for the reader and the recorder
        job.error = err
    finally:
        if before != job.threads:
            torch.set_num_threads(before)
        job.done.set()


class Pipeline:
    """The worker thread and its bounded queue (one per process, started on first use)."""

    def __init__(self) -> None:
        self._q: queue.Queue[Job | None] = queue.Queue()
        self._cv = threading.Condition()
        self._pending_bytes = 0
        self._pending_jobs = 0
        self._thread: threading.Thread | None = None
        self._threads = 0

    def _start(self, threads: int) -> None:
        ready = threading.Event()
        caller = torch.get_num_threads()

        def main() -> None:
            torch.set_num_threads(threads)  # this thread's OpenMP/MKL pools only ...
            self._threads = threads
            ready.set()
            while True:
                job = self._q.get()
                if job is None:
                    return
                try:
                    if job.threads != self._threads:
                        torch.set_num_threads(job.threads)
                        self._threads = job.threads
                    if job.event is not None:
                        job.event.synchronize()
                    job.run()
                except BaseException as err:
                    job.error = err
                finally:
                    job.done.set()
                    with self._cv:
                        self._pending_bytes -= job.nbytes
                        self._pending_jobs -= 1
                        self._cv.notify_all()

        self._thread = threading.Thread(target=main, name="autospec-spectra", daemon=True)
        self._thread.start()
        ready.wait()
        torch.set_num_threads(caller)  # ... but torch also keeps it as the default for new threads: restore

    def submit(self, job: Job) -> None:
        """Queue ``job``; waits while the queue is full (memory cap or job count)."""
        with self._cv:
            if self._thread is None or not self._thread.is_alive():
                self._start(job.threads)
            cap = max(job.nbytes, job.cap)
            self._cv.wait_for(
                lambda: (
                    self._pending_jobs == 0
                    or (self._pending_jobs < MAX_JOBS and self._pending_bytes + job.nbytes <= cap)
                )
            )
            self._pending_bytes += job.nbytes
            self._pending_jobs += 1
        self._q.put(job)

    def drain(self) -> None:
        """Wait until every queued job has run."""
        with self._cv:
            self._cv.wait_for(lambda: self._pending_jobs == 0)

    @property
    def pending(self) -> tuple[int, int]:
        """(jobs, bytes) waiting or running."""
        with self._cv:
            return self._pending_jobs, self._pending_bytes


PIPELINE = Pipeline()
atexit.register(PIPELINE.drain)
