"""The study as data: the workflow config checked and validated, and the plan of every job.

The Snakefile is a thin shell around this package: :func:`check_config_sources` before Snakemake
merges the config files, then :func:`load_study` (validate + :func:`plan_study`). Everything here
is plain Python, unit-tested without Snakemake (tests/test_workflow_plan.py).
"""

from .config import check_config_sources, check_tree, validate_workflow_config
from .plan import Cell, Experiment, StudyPlan, load_study, plan_study

__all__ = [
    "Cell",
    "Experiment",
    "StudyPlan",
    "check_config_sources",
    "check_tree",
    "load_study",
    "plan_study",
    "validate_workflow_config",
]
