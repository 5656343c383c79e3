"""Training: one job per run (data set x model x task x variant x seed), spectra recorded."""

TRAIN_OUT = {
    "spectra": f"{R}/{{runid}}/spectra.parquet",
    "metrics": f"{R}/{{runid}}/metrics.tsv",
    "run_json": f"{R}/{{runid}}/run.json",
    "model": f"{R}/{{runid}}/model.pt",
    "manifest": f"{R}/{{runid}}/manifest.json",
}


# Local and instant (on the submit host under SLURM): one run's settings as the run.yaml that
# `autospec train` reads (and validates against its run schema). The settings are this rule's
# params, so a config change rewrites exactly the affected run.yaml files and reruns those runs.
localrules:
    run_config,


rule run_config:
    output:
        f"{R}/{{runid}}/run.yaml",
    log:
        f"{R}/logs/run_config/{{runid}}.log",
    wildcard_constraints:
        runid=alternatives(PLAN.runs),
    conda:
        "../envs/autospec.yaml"
    threads: 1
    params:
        text=lambda w: PLAN.run_yaml(w.runid),
    shell:
        "printf '%s' {params.text:q} > {output:q} 2> {log:q}"


# Snakemake deletes only the declared outputs before a rerun, so a run killed mid-way resumes
# from the checkpoint.pt left in its directory (training.checkpoint_every > 0, same config).
# Memory and run time: the config's `resources.train` (a pair's `resources` override it); every
# other rule takes the profile's default-resources. Under a wall-time limit
# (`resources.max_runtime`) the runtime request is capped at it and a run that needs longer is
# resubmitted (`retries`) until done, each job resuming from the last checkpoint
# (docs/workflow.md, "Runs longer than the wall-time limit"; `autospec estimate` sizes them).
rule train:
    input:
        config=f"{R}/{{runid}}/run.yaml",
        data=lambda w: PLAN.data_path(w.runid),
    output:
        **TRAIN_OUT,
    log:
        f"{R}/logs/train/{{runid}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{runid}}.tsv"
    wildcard_constraints:
        runid=alternatives(PLAN.plain_runs),
    retries: PLAN.train_retries
    conda:
        "../envs/autospec.yaml"
    threads: lambda w: PLAN.run_threads(w.runid)
    resources:
        mem_mb=run_resource("mem_mb"),
        runtime=run_resource("runtime"),
        gpu=lambda w: PLAN.run_gpu(w.runid),
    params:
        outdir=lambda w: f"{R}/{w.runid}",
    shell:
        "python -m autospec train --config {input.config:q} --out {params.outdir:q} "
        "--threads {threads} --no-progress > {log:q} 2>&1"


# The same step for the runs that also record per-subject spectra (first seed of a difference cell).
use rule train as train_subjects with:
    output:
        **TRAIN_OUT,
        subject_spectra=f"{R}/{{runid}}/subject_spectra.parquet",
        subjects=f"{R}/{{runid}}/subjects.tsv",
    wildcard_constraints:
        runid=alternatives(PLAN.subject_runs),
    priority: 1  # the longest runs: start them first
