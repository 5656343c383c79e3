"""One training run: a model of the battery trained on a prepared dataset while spectra are
recorded (``autospec train``). See docs/training.md.

Entry points: :func:`load_run_config` (YAML / mapping -> validated :class:`RunConfig`) and
:func:`train` (config + output directory -> :class:`RunResult`); :class:`Session` is one run in
progress (set up / resume, one epoch, checkpoint) for callers that drive the epochs themselves.
"""

from .config import RunConfig, RunSettings, config_hash, load_run_config, run_schema, validate_run_config
from .loop import RunResult, train
from .session import Session

__all__ = [
    "RunConfig",
    "RunResult",
    "RunSettings",
    "Session",
    "config_hash",
    "load_run_config",
    "run_schema",
    "train",
    "validate_run_config",
]
