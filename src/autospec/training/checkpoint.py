"""Resumable runs: ``checkpoint.pt`` plus the spectra rows written so far.

Layout in the run directory (names from :class:`autospec.rundir.RunDir`)::

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

import io
import random
import shutil
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_output, sha256_file
from ..errors import InputError
from ..rundir import RunDir

FORMAT = "autospec-checkpoint/2"
#: what a checkpoint of this format must hold
KEYS = (
    "format",
    "config_hash",
    "epoch",
    "rec_steps",
    "model",
    "optimizer",
    "rng",
    "metrics",
    "parts",
    "last_recorded",
    "last_groups",
    "resumed_at",
    "draws",
)
METRIC_COLUMNS = {
    "epoch": torch.int64,
    "loss": torch.float64,
    "metric": torch.float64,
    "wall_s": torch.float64,
    "recorded": torch.bool,
}
TEST_COLUMNS = {"test_loss": torch.float64, "test_metric": torch.float64}


# ---------------------------------------------------------------------------------- RNG states
def rng_states(generator: torch.Generator) -> dict[str, Any]:
    """torch (CPU, CUDA), numpy (legacy global), python ``random`` and the batch-order generator."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "batches": generator.get_state(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {
            "version": int(version),
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]  # unannotated in torch
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_states(states: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(states["torch"])
    generator.set_state(states["batches"])
    n = states["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = states["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss_next"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


# ---------------------------------------------------------------------------------- progress
@dataclass
class Progress:
    """What the session has done so far (restored on resume)."""

    epoch: int = 0  # next epoch to run
    rec_steps: dict[str, int] = field(default_factory=dict)  # recorder name -> step counter
    metrics: list[dict[str, Any]] = field(default_factory=list)  # one row per epoch (see METRIC_COLUMNS)
    parts: list[dict[str, str]] = field(default_factory=list)  # {"kind", "name", "sha256"}
    last_recorded: torch.Tensor | None = None  # positions of the last recorded batch's samples
    last_groups: torch.Tensor | None = None  # the group ids that batch was recorded with
    resumed_at: list[int] = field(default_factory=list)
    draws: list[dict[str, Any]] = field(default_factory=list)  # matched sampling: {"step", "rows" (K, m)}

    def metrics_tensors(self) -> dict[str, torch.Tensor]:
        cols = dict(METRIC_COLUMNS)
        if self.metrics and "test_loss" in self.metrics[0]:
            cols.update(TEST_COLUMNS)
        return {c: torch.tensor([m[c] for m in self.metrics], dtype=d) for c, d in cols.items()}

    @staticmethod
    def metrics_from_tensors(t: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        cols = [*METRIC_COLUMNS, *(c for c in TEST_COLUMNS if c in t)]  # a missing column is a KeyError
        conv = {torch.int64: int, torch.float64: float, torch.bool: bool}
        kinds = {**METRIC_COLUMNS, **TEST_COLUMNS}
        return [{c: conv[kinds[c]](t[c][i]) for c in cols} for i in range(len(t["epoch"]))]


# ---------------------------------------------------------------------------------- checkpoint file
def save_checkpoint(
    run: RunDir,
    config_hash: str,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    progress: Progress,
) -> None:
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
        "last_groups": progress.last_groups,
        "resumed_at": list(progress.resumed_at),
        "draws": [dict(d) for d in progress.draws],
    }
    buf = io.BytesIO()  # torch.save to a full disk raises a bare RuntimeError; Python's write an OSError
    torch.save(blob, buf)
    with atomic_output(run.checkpoint) as tmp:
        tmp.write_bytes(buf.getvalue())


def load_checkpoint(run: RunDir, config_hash: str) -> dict[str, Any] | None:
    """The checkpoint in ``run`` (None if there is none), checked against ``config_hash``."""
    path = run.checkpoint
    if not path.exists():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{path}: unreadable checkpoint ({first}); delete it to start afresh") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise InputError(f"{path}: not an autospec checkpoint ({FORMAT}); delete it to start afresh")
    if blob.get("config_hash") != config_hash:
        raise InputError(
            f"{path}: written by a different run config or dataset (config hash {str(blob.get('config_hash'))[:12]}, "
            f"this run {config_hash[:12]}); delete it or use another --out"
        )
    missing = [k for k in KEYS if k not in blob]
    if missing:
        raise InputError(f"{path}: checkpoint lacks {', '.join(missing)}; delete it to start afresh")
    for part in blob["parts"]:
        p = run.checkpoint_parts / part["name"]
        if not p.exists() or sha256_file(p) != part["sha256"]:
            raise InputError(f"{path}: its spectra part {p} is missing or changed; delete the checkpoint")
    return blob


def progress_from(blob: dict[str, Any], where: str) -> Progress:
    """The progress stored in a checkpoint; InputError naming ``where`` when a field is malformed."""
    try:
        return Progress(
            epoch=int(blob["epoch"]),
            rec_steps={k: int(v) for k, v in blob["rec_steps"].items()},
            metrics=Progress.metrics_from_tensors(blob["metrics"]),
            parts=[dict(p) for p in blob["parts"]],
            last_recorded=blob["last_recorded"],
            last_groups=blob["last_groups"],
            resumed_at=list(blob["resumed_at"]),
            draws=[dict(d) for d in blob["draws"]],
        )
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        raise InputError(
            f"{where}: malformed checkpoint ({type(err).__name__}: {err}); delete it to start afresh"
        ) from None


def drop_unlisted_parts(run: RunDir, parts: list[dict[str, str]]) -> None:
    """Delete part files no checkpoint lists (left by a run killed between part and checkpoint)."""
    d = run.checkpoint_parts
    if d.is_dir():
        keep = {p["name"] for p in parts}
        for f in d.iterdir():
            if f.name not in keep:
                f.unlink()


def remove_checkpoint(run: RunDir) -> None:
    run.checkpoint.unlink(missing_ok=True)
    shutil.rmtree(run.checkpoint_parts, ignore_errors=True)
