"""``autospec train``: one training run with spectra recorded (see docs/training.md)."""

from __future__ import annotations

import argparse
import sys

NAME = "train"
HELP = "Train a model on a prepared dataset while recording gradient spectra (one run = one job)."

#: exit status of a run stopped by a non-finite loss (its partial outputs are written)
EXIT_DIVERGED = 3


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="run config YAML (schema: autospec/schemas/run.schema.yaml)")
    p.add_argument("--out", required=True, help="run directory (outputs, checkpoint)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (overrides training.threads)")
    p.add_argument("--device", default=None, help="auto, cpu or cuda (overrides training.device)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run(args: argparse.Namespace) -> int:
    from ..runlock import run_lock
    from ..training import load_run_config, train

    with run_lock(args.out, "autospec train"):  # one writer per run directory, before anything in it is read
        cfg = load_run_config(args.config, overrides={"training.threads": args.threads, "training.device": args.device})
        result = train(cfg, args.out, progress=not args.no_progress)
    if result.status == "diverged":
        print(
            f"autospec train: diverged: loss {result.diverged_loss} at epoch {result.diverged_epoch}; "
            f"spectra of the {result.epochs_completed} epoch(s) before it, metrics and run.json "
            f"(status diverged) are in {result.out_dir}",
            file=sys.stderr,
        )
        return EXIT_DIVERGED
    print(
        f"wrote {result.out_dir}: {result.epochs_completed} epochs, run {result.run_id}"
        + (f" (resumed at epoch {result.resumed_from})" if result.resumed_from is not None else "")
    )
    return 0
