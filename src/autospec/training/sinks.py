"""Where recorded spectra go: one :class:`SpectraSink` per spectra file of the run.

A sink streams every recorded step into its final Parquet file and, when the run checkpoints,
into the current checkpoint part (see :mod:`.checkpoint`). Each step goes in with one
``write_frame`` call (one Parquet row group), whether it comes from the training loop or from a
part replayed on resume, so a resumed run writes the same bytes as an uninterrupted one.

Snapshots whose spectra are still being computed (the recorder's worker thread) wait in the sink
(:meth:`SpectraSink.put`) and are written in step order as they become ready
(:meth:`SpectraSink.flush`), all of them before a checkpoint part is cut or the file is closed.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import sha256_file
from ..rundir import RunDir
from ..spectral import Snapshot
from ..spectral.store import COLUMNS, SpectraWriter, empty_frame

#: the columns :func:`snapshot_frame` builds itself; any other store column -> Snapshot.to_frame
FAST_COLUMNS = ("step", "key", "stat", "group", "index", "value")


def snapshot_frame(snap: Snapshot) -> pd.DataFrame:
    """``snap.to_frame()``, built with whole-array operations (fast with many groups).

    Falls back to ``snap.to_frame()`` when the spectral store's table has columns this function
    does not know, so every row always carries every column the store defines.
    """
    if tuple(COLUMNS) != FAST_COLUMNS:
        return snap.to_frame()
    items = snap.items() if snap.recorded else []
    if not items:
        return empty_frame()
    lens = np.array([len(v) for _, v in items], dtype=np.int64)
    return pd.DataFrame(
        {
            "step": np.full(int(lens.sum()), snap.step, dtype=np.int64),
            "key": np.repeat(np.array([k for (k, _, _), _ in items], dtype=object), lens),
            "stat": np.repeat(np.array([s for (_, s, _), _ in items], dtype=object), lens),
            "group": np.repeat(np.array([g for (_, _, g), _ in items], dtype=np.int64), lens),
            "index": np.concatenate([np.arange(n, dtype=np.int32) for n in lens]),
            "value": np.concatenate([np.asarray(v, dtype=np.float64) for _, v in items]),
        }
    )


class SpectraSink:
    """One spectra file (``kind`` = its RunDir attribute: ``spectra`` or ``subject_spectra``).

    ``hidden_group``: rows of this group id are not written (matched group sampling's
    "not sampled" group).
    """

    def __init__(self, run: RunDir, kind: str, metadata: dict[str, Any], parts: bool, hidden_group: int | None = None):
        self.run, self.kind, self.metadata = run, kind, metadata
        self.final = SpectraWriter(getattr(run, kind), metadata)
        self.use_parts = parts
        self.hidden_group = hidden_group
        self.part: SpectraWriter | None = None
        self.pending: list[Any] = []  # snapshots not yet written, in step order

    def put(self, snap: Any) -> None:
        """Queue a recorded snapshot; it is written by :meth:`flush` once its values exist."""
        self.pending.append(snap)

    def flush(self, wait: bool = True) -> None:
        """Write the queued snapshots in order: all of them (``wait``), or those ready so far."""
        while self.pending and (wait or self.pending[0].ready):
            self.write(snapshot_frame(self.pending.pop(0)))

    def write(self, frame: pd.DataFrame) -> None:
        if self.hidden_group is not None and len(frame):
            frame = frame[frame["group"] != self.hidden_group].reset_index(drop=True)
        if not len(frame):
            return
        self.final.write_frame(frame)
        if self.use_parts:
            if self.part is None:
                open_part = self.run.checkpoint_parts / f"{self.kind}.open.parquet"
                self.part = SpectraWriter(open_part, {**self.metadata, "checkpoint_part": True})
            self.part.write_frame(frame)

    def replay(self, parts: list[dict[str, str]]) -> None:
        """Feed the rows of earlier parts (this kind's) into the final file, step by step."""
        for p in parts:
            if p["kind"] != self.kind:
                continue
            df = pd.read_parquet(self.run.checkpoint_parts / p["name"])
            for _, step in df.groupby("step", sort=False):
                self.final.write_frame(step.reset_index(drop=True))

    def cut(self, epoch: int) -> dict[str, str] | None:
        """Close the current part as ``<kind>.e<epoch>.parquet``; its record for the checkpoint."""
        self.flush()
        if self.part is None:
            return None
        self.part.path = self.run.checkpoint_parts / f"{self.kind}.e{epoch:06d}.parquet"
        path = self.part.close()
        self.part = None
        return {"kind": self.kind, "name": path.name, "sha256": sha256_file(path)}

    def close(self) -> Path:
        self.flush()
        if self.part is not None:
            self.part.abort()
            self.part = None
        return self.final.close()

    def abort(self) -> None:
        self.pending.clear()
        for w in (self.part, self.final):
            if w is not None:
                with contextlib.suppress(Exception):  # already failing: the first error is the one to report
                    w.abort()
        self.part = None
