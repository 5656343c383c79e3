"""One training run: a model of the battery trained on a prepared dataset while spectra are
recorded (``autospec train``). See docs/training.md.

Entry points: :func:`load_run_config` (YAML / mapping -> validated :class:`RunConfig`) and
:func:`train` (config + output directory -> :class:`RunResult`).
"""

from .config import RunConfig, config_hash, load_run_config, run_schema, validate_run_config
from .loop import RunResult, train

__all__ = ["RunConfig", "RunResult", "config_hash", "load_run_config", "run_schema", "train", "validate_run_config"]
