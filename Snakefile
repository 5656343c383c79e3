# AutoSpec: the whole study as one Snakemake workflow.
#   snakemake --cores 2                                   the default study (config/config.yaml)
#   snakemake --cores 2 --configfile config/paper.yaml    the paper study (1000 epochs, full sizes)
#   snakemake --workflow-profile profiles/slurm           on a SLURM cluster
# Every rule is a thin call of the `autospec` CLI (src/autospec/commands/); the study plan is
# autospec.workflow.plan_study (plain Python, unit-tested); docs/workflow.md describes the config,
# the outputs under results/ and how to add a cohort, docs/robustness.md what is refused and why.
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from autospec.errors import InputError
from autospec.workflow import check_config_sources, load_study

min_version("9.0")

# Before Snakemake merges them into the default config: every config file named on the command
# line, re-read with autospec's bounded YAML loader (bombs, recursive aliases, duplicate keys and
# YTE templates are refused naming the file), and the merged values within a node budget.
try:
    check_config_sources(workflow.config_settings.configfiles, config)
except InputError as err:
    raise WorkflowError(f"config: {err}") from None


configfile: "config/config.yaml"


# Validated (defaults filled, one line naming a bad field) and planned: every job of the study.
try:
    PLAN = load_study(
        config, Path(workflow.basedir) / "config/schemas/config.schema.yaml"
    )
except InputError as err:
    raise WorkflowError(str(err)) from None


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/stats.smk"
include: "rules/figures.smk"


localrules:
    all,


rule all:
    default_target: True
    input:
        PLAN.final_targets(),
