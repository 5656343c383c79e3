"""``autospec check-config``: check workflow config files before Snakemake reads them.

Snakemake loads ``--configfile`` files with its own YAML loader before any workflow code runs:
it evaluates YTE templates (Python code) in a file that sets ``__use_yte__``, and merging a
"billion laughs" file of nested mappings hangs it. This command reads the files the way the
workflow would use them, but with autospec's bounded loader, merges them over the workflow's
``config/config.yaml`` as Snakemake does (mappings key by key, anything else replaced), and
validates and plans the result: exit 0 with a one-line summary, or exit 2 with one line naming
the file or field. Run it on config files you did not write (docs/robustness.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

NAME = "check-config"
HELP = "Check workflow config files (bounded YAML, schema, study plan) without running Snakemake."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--configfile",
        type=Path,
        nargs="+",
        default=[],
        metavar="FILE",
        help="config files merged over the workflow's config/config.yaml, in order (as snakemake --configfile)",
    )
    parser.add_argument(
        "--workflow",
        type=Path,
        default=Path("."),
        metavar="DIR",
        help="the workflow directory (Snakefile, config/); default the current directory",
    )


def merge(config: dict[str, Any], overwrite: Mapping[str, Any]) -> dict[str, Any]:
    """Snakemake's config merge (the one implementation is :func:`autospec.workflow.config.merge`)."""
    from ..workflow.config import merge as merge_configs

    return merge_configs(config, overwrite)


def run(args: argparse.Namespace) -> int:
    from ..workflow import load_study
    from ..workflow.config import read_config_files

    config, schema = read_config_files(args.workflow, args.configfile)
    plan = load_study(config, schema)
    print(
        f"config ok: study {plan.study!r}, results in {plan.results}: {len(plan.experiments)} data set x model "
        f"pairs, {len(plan.runs)} training runs, {len(plan.diff_cells)} group tests"
    )
    return 0
