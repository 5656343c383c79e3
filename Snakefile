# AutoSpec: the whole study as one Snakemake workflow.
#   snakemake --cores 2                                   the default study (config/config.yaml)
#   snakemake --cores 2 --configfile config/paper.yaml    the paper study (1000 epochs, full sizes)
#   snakemake --workflow-profile profiles/slurm           on a SLURM cluster
# Every rule is a thin call of the `autospec` CLI (src/autospec/commands/); docs/workflow.md
# describes the config, the outputs under results/ and how to add a cohort.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "config/schemas/config.schema.yaml")


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
        final_targets(),
