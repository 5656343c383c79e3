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
    """Snakemake's update_config: mappings merged key by key, any other value replaced."""
    for key, value in overwrite.items():
        if isinstance(value, Mapping):
            sub = config.get(key)
            config[key] = merge(dict(sub) if isinstance(sub, Mapping) else {}, value)
        else:
            config[key] = value
    return config


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..safe_yaml import load_yaml
    from ..workflow import check_tree, load_study
    from ..workflow.config import MAX_DEPTH, MAX_NODES

    base = args.workflow / "config" / "config.yaml"
    schema = args.workflow / "config" / "schemas" / "config.schema.yaml"
    if not schema.is_file():
        raise InputError(f"--workflow {args.workflow}: no config/schemas/config.schema.yaml there")
    config: dict[str, Any] = {}
    for f in [base, *args.configfile]:
        doc = load_yaml(f, "workflow config", max_nodes=MAX_NODES, max_depth=MAX_DEPTH)
        if doc is None:
            continue
        if not isinstance(doc, Mapping):
            raise InputError(f"{f}: workflow config must be a mapping, not a {type(doc).__name__}")
        if "__use_yte__" in doc:
            raise InputError(f"{f}: workflow config refused: YTE templates (__use_yte__) are Python code")
        merge(config, doc)
    check_tree(config)
    plan = load_study(config, schema)
    print(
        f"config ok: study {plan.study!r}, results in {plan.results}: {len(plan.experiments)} data set x model "
        f"pairs, {len(plan.runs)} training runs, {len(plan.diff_cells)} group tests"
    )
    return 0
