"""One training run: :func:`train` opens a :class:`~.session.Session`, runs its epochs with
checkpoints, closes the spectra files and writes the other outputs (:mod:`.outputs`).

See docs/training.md for the config, outputs, resume and determinism.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..errors import InputError
from . import checkpoint as ckpt
from . import outputs
from .config import RunConfig
from .objective import metric_name
from .session import Diverged, Session


@dataclass
class RunResult:
    status: str  # "completed" | "diverged"
    out_dir: Path
    run_id: str
    epochs_completed: int
    diverged_epoch: int | None = None
    diverged_loss: float | None = None
    resumed_from: int | None = None


def progress_bar(session: Session, enabled: bool) -> tqdm:
    """A tqdm bar over epochs on stderr: every 0.5 s on a terminal, every 30 s in a log file."""
    interactive = sys.stderr.isatty()
    m = session.settings.model
    return tqdm(
        total=session.settings.training.epochs,
        initial=session.progress.epoch,
        file=sys.stderr,
        disable=not enabled,
        unit="epoch",
        desc=f"train {m.family}/{m.task}",
        mininterval=0.5 if interactive else 30.0,
        dynamic_ncols=interactive,
        ascii=not interactive,
    )


def run_epochs(session: Session, progress: bool, on_epoch: Callable[[int], None] | None) -> Diverged | None:
    """Epochs until the configured number (or a divergence), checkpointing as configured."""
    task = session.settings.model.task
    with progress_bar(session, progress) as bar:
        while session.progress.epoch < session.settings.training.epochs:
            diverged = session.run_epoch()
            if diverged is not None:
                return diverged
            if session.checkpoint_due():
                session.save_checkpoint()
            row = session.progress.metrics[-1]
            bar.update(1)
            bar.set_postfix({"loss": f"{row['loss']:.4g}", metric_name(task): f"{row['metric']:.4g}"}, refresh=False)
            if on_epoch is not None:
                on_epoch(row["epoch"])
    return None


def _write_error(err: OSError, out_dir: Path) -> InputError:
    where = err.filename or out_dir
    what = errno.errorcode.get(err.errno or 0, "")
    return InputError(f"{where}: {err.strerror or err} ({what}); no outputs of this run were left in {out_dir}")


def train(
    cfg: RunConfig,
    out_dir: os.PathLike[str] | str,
    *,
    progress: bool = True,
    on_epoch: Callable[[int], None] | None = None,
) -> RunResult:
    """Train ``cfg``'s model on its dataset, recording spectra; write the outputs to ``out_dir``.

    Resumes from ``out_dir/checkpoint.pt`` when its config hash matches (else InputError).
    ``on_epoch(epoch)`` is called after each finished epoch (after its checkpoint).
    Returns the status; a diverged run (non-finite loss) writes what it has and returns
    ``status="diverged"``. Raises InputError for bad input, and for a write that fails (disk
    full, ...) after removing every output of the run (a checkpoint already committed stays).
    """
    t_start, started = time.perf_counter(), dt.datetime.now(dt.UTC).isoformat()
    with Session.open(cfg, out_dir) as session:
        try:
            diverged = run_epochs(session, progress, on_epoch)
            spectra = session.close_spectra()
        except OSError as err:
            outputs.remove_outputs(session.run)
            raise _write_error(err, session.run.path) from None
    clock = {
        "started": started,
        "finished": dt.datetime.now(dt.UTC).isoformat(),
        "wall_s": time.perf_counter() - t_start,
    }
    try:
        record = outputs.write_outputs(session, spectra, diverged, clock)
    except OSError as err:
        outputs.remove_outputs(session.run)
        raise _write_error(err, session.run.path) from None
    ckpt.remove_checkpoint(session.run)
    resumed = session.progress.resumed_at
    return RunResult(
        status=record["status"],
        out_dir=session.run.path,
        run_id=session.run_id,
        epochs_completed=record["epochs_completed"],
        diverged_epoch=None if diverged is None else diverged.epoch,
        diverged_loss=None if diverged is None else diverged.loss,
        resumed_from=resumed[0] if resumed else None,
    )
