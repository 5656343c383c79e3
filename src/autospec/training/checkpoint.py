"""Resumable runs: ``checkpoint.pt`` plus the spectra rows written so far.

Layout in the run directory::

    checkpoint.pt                         model, optimizer, RNG states, epoch, recorder steps,
                                          metrics so far, the list of spectra parts (+ sha256)
    checkpoint.parts/spectra.e000005.parquet          spectra rows of the epochs since the
    checkpoint.parts/subject_spectra.e000005.parquet  previous checkpoint (one file per interval)

Every file is written to a temp name and renamed; ``checkpoint.pt`` is written last and is the
commit point: a part it does not list (a crash between the two) is ignored and deleted. Parts
hold only the rows of their own interval, so checkpointing costs O(rows) over a run, not
O(rows²). ``checkpoint.pt`` holds only tensors, numbers, strings, lists and dicts: it loads with
``torch.load(weights_only=True)``; nothing is unpickled.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..atomic import atomic_output, sha256_file
from ..errors import InputError
from ..spectral.store import SpectraWriter, empty_frame

CHECKPOINT = "checkpoint.pt"
PARTS_DIR = "checkpoint.parts"
FORMAT = "autospec-checkpoint/1"


# ---------------------------------------------------------------------------------- RNG states
def rng_states(generator: torch.Generator) -> dict[str, Any]:
    """torch (CPU, CUDA), numpy (legacy global), python ``random`` and the batch-order generator."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "batches": generator.get_state(),
        "numpy": {"name": name, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }  # fmt: skip
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_states(states: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(states["torch"])
    generator.set_state(states["batches"])
    n = states["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))  # fmt: skip
    p = states["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss_next"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


# ---------------------------------------------------------------------------------- state
@dataclass
class Progress:
    """What the loop has done so far (restored on resume)."""

    epoch: int = 0  # next epoch to run
    rec_steps: dict[str, int] = field(default_factory=dict)  # recorder name -> step counter
    metrics: list[dict[str, Any]] = field(default_factory=list)
    parts: list[dict[str, str]] = field(default_factory=list)  # {"kind", "name", "sha256"}
    last_recorded: torch.Tensor | None = None  # sample indices of the last recorded batch
    resumed_at: list[int] = field(default_factory=list)

    def metrics_tensors(self) -> dict[str, torch.Tensor]:
        cols = ("epoch", "loss", "metric", "wall_s", "recorded")
        dtypes = (torch.int64, torch.float64, torch.float64, torch.float64, torch.bool)
        return {c: torch.tensor([m[c] for m in self.metrics], dtype=d) for c, d in zip(cols, dtypes)}

    @staticmethod
    def metrics_from_tensors(t: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        n = len(t["epoch"])
        return [{"epoch": int(t["epoch"][i]), "loss": float(t["loss"][i]), "metric": float(t["metric"][i]),
                 "wall_s": float(t["wall_s"][i]), "recorded": bool(t["recorded"][i])} for i in range(n)]  # fmt: skip


def save_checkpoint(
    run_dir: Path,
    config_hash: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    progress: Progress,
) -> Path:
    """Write ``checkpoint.pt`` atomically (call after the parts it lists are in place)."""
    blob = {
        "format": FORMAT,
        "config_hash": config_hash,
        "epoch": progress.epoch,
        "rec_steps": dict(progress.rec_steps),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": rng_states(generator),
        "metrics": progress.metrics_tensors(),
        "parts": [dict(p) for p in progress.parts],
        "last_recorded": progress.last_recorded,
        "resumed_at": list(progress.resumed_at),
    }
    path = run_dir / CHECKPOINT
    with atomic_output(path) as tmp:
        torch.save(blob, tmp)
    return path


def load_checkpoint(run_dir: Path, config_hash: str) -> dict[str, Any] | None:
    """The checkpoint in ``run_dir`` (None if there is none), checked against ``config_hash``."""
    path = run_dir / CHECKPOINT
    if not path.exists():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{path}: unreadable checkpoint ({first}); delete it to start afresh") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise InputError(f"{path}: not an autospec checkpoint ({FORMAT}); delete it to start afresh")
    if blob["config_hash"] != config_hash:
        raise InputError(
            f"{path}: written by a different run config or dataset (config hash {blob['config_hash'][:12]}, "
            f"this run {config_hash[:12]}); delete it or use another --out"
        )
    for part in blob["parts"]:
        p = run_dir / PARTS_DIR / part["name"]
        if not p.exists() or sha256_file(p) != part["sha256"]:
            raise InputError(f"{path}: its spectra part {p} is missing or changed; delete the checkpoint")
    return blob


def progress_from(blob: dict[str, Any]) -> Progress:
    return Progress(
        epoch=int(blob["epoch"]),
        rec_steps={k: int(v) for k, v in blob["rec_steps"].items()},
        metrics=Progress.metrics_from_tensors(blob["metrics"]),
        parts=[dict(p) for p in blob["parts"]],
        last_recorded=blob["last_recorded"],
        resumed_at=list(blob["resumed_at"]),
    )


def drop_unlisted_parts(run_dir: Path, parts: list[dict[str, str]]) -> None:
    """Delete part files no checkpoint lists (left by a run killed between part and checkpoint)."""
    d = run_dir / PARTS_DIR
    if d.is_dir():
        keep = {p["name"] for p in parts}
        for f in d.iterdir():
            if f.name not in keep:
                f.unlink()


def remove_checkpoint(run_dir: Path) -> None:
    (run_dir / CHECKPOINT).unlink(missing_ok=True)
    shutil.rmtree(run_dir / PARTS_DIR, ignore_errors=True)


# ---------------------------------------------------------------------------------- spectra sink
class SpectraSink:
    """One spectra file: streams every recorded step into the final file and into the current
    checkpoint part.

    Each step goes in with one ``write_frame`` call (one Parquet row group), whether it comes from
    the training loop or from a part replayed on resume, so a resumed run writes the same bytes.
    """

    def __init__(self, run_dir: Path, kind: str, metadata: dict[str, Any], parts: bool):
        self.run_dir, self.kind, self.metadata = run_dir, kind, metadata
        self.final = SpectraWriter(run_dir / f"{kind}.parquet", metadata)
        self.use_parts = parts
        self.part: SpectraWriter | None = None
        self.part_path: Path | None = None

    def write(self, frame: pd.DataFrame) -> None:
        if not len(frame):
            return
        self.final.write_frame(frame)
        if self.use_parts:
            if self.part is None:
                self.part_path = self.run_dir / PARTS_DIR / f"{self.kind}.open.parquet"
                self.part = SpectraWriter(self.part_path, {**self.metadata, "checkpoint_part": True})
            self.part.write_frame(frame)

    def replay(self, parts: list[dict[str, str]]) -> None:
        """Feed the rows of earlier parts (this kind's) into the final file, step by step."""
        for p in parts:
            if p["kind"] != self.kind:
                continue
            df = pd.read_parquet(self.run_dir / PARTS_DIR / p["name"])
            for _, step in df.groupby("step", sort=False):
                self.final.write_frame(step.reset_index(drop=True))

    def cut(self, epoch: int) -> dict[str, str] | None:
        """Close the current part as ``<kind>.e<epoch>.parquet``; its record for the checkpoint."""
        if self.part is None:
            return None
        self.part.path = self.run_dir / PARTS_DIR / f"{self.kind}.e{epoch:06d}.parquet"
        path = self.part.close()
        self.part = None
        return {"kind": self.kind, "name": path.name, "sha256": sha256_file(path)}

    def close(self) -> Path:
        if self.part is not None:
            self.part.abort()
            self.part = None
        return self.final.close()

    def abort(self) -> None:
        for w in (self.part, self.final):
            if w is not None:
                try:
                    w.abort()
                except Exception:
                    pass
        self.part = None


# ---------------------------------------------------------------------------------- rows, priming
def snapshot_frame(snap) -> pd.DataFrame:
    """``snap.to_frame()`` built with whole-array operations (fast with many groups)."""
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


def prime_recorders(step: Callable[[], None], recorders: Sequence, model: torch.nn.Module,
                    device: torch.device) -> None:  # fmt: skip
    """Rebuild the recorders' input caches after a resume by running ``step`` once, recorded.

    A recorder reuses work on a layer input equal to the last recorded step's (full-batch
    training) by an exact route whose float64 results may differ from the general route in the
    last bits. An uninterrupted run has that cache; a resumed one would not, and its spectra
    would not be byte-identical. The cache depends only on that step's input batch and groups,
    so ``step`` — one recorded forward + backward on that batch — rebuilds it. Its snapshot is
    dropped; gradients, RNG states and the recorders' step counters are restored.
    """
    steps = [r.step for r in recorders]
    for r in recorders:
        r.step = 0  # a recording step whatever ``every`` is
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            step()
    finally:
        model.zero_grad(set_to_none=True)
        for r, s in zip(recorders, steps):
            r.step = s
