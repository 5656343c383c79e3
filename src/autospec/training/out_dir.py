"""The run directory (``--out``) before a session writes to it: checked, created, cleared."""

from __future__ import annotations

import tempfile

from ..errors import InputError
from ..rundir import RunDir


def check_out_path(run: RunDir) -> None:
    """Refuse an ``--out`` that exists and is not a directory (before any data is read)."""
    if run.path.exists() and not run.path.is_dir():
        raise InputError(f"--out {run.path}: exists and is not a directory")


def prepare_run_dir(run: RunDir) -> None:
    """Create ``--out`` and make sure files can be created in it (InputError naming it otherwise)."""
    check_out_path(run)
    try:
        run.path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=run.path):
            pass
    except OSError as err:
        raise InputError(f"--out {run.path}: cannot write there ({err.strerror or err})") from None


def clear_previous_outputs(run: RunDir) -> None:
    """Never leave a previous run's outputs (or a killed run's temp files) beside this run's."""
    for path in run.outputs:
        path.unlink(missing_ok=True)
    for path in (*run.outputs, run.checkpoint):
        for tmp in run.path.glob(f".{path.name}.*.tmp"):
            tmp.unlink(missing_ok=True)
