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
        runid=alternatives(RUNS),
    conda:
        "../envs/autospec.yaml"
    threads: 1
    params:
        text=run_yaml,
    shell:
        "printf '%s' {params.text:q} > {output} 2> {log}"


# Snakemake deletes only the declared outputs before a rerun, so a run killed mid-way resumes
# from the checkpoint.pt left in its directory (training.checkpoint_every > 0, same config).
rule train:
    input:
        config=f"{R}/{{runid}}/run.yaml",
        data=lambda w: data_path(w.runid),
    output:
        **TRAIN_OUT,
    log:
        f"{R}/logs/train/{{runid}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{runid}}.tsv"
    wildcard_constraints:
        runid=alternatives(PLAIN_RUNS),
    conda:
        "../envs/autospec.yaml"
    threads: run_threads
    resources:
        mem_mb=run_resource("mem_mb"),
        runtime=run_resource("runtime"),
        gpu=run_gpu,
    params:
        outdir=lambda w: f"{R}/{w.runid}",
    shell:
        "python -m autospec train --config {input.config} --out {params.outdir} "
        "--threads {threads} --no-progress > {log} 2>&1"


# The same step for the runs that also record per-subject spectra (first seed of a difference cell).
use rule train as train_subjects with:
    output:
        **TRAIN_OUT,
        subject_spectra=f"{R}/{{runid}}/subject_spectra.parquet",
        subjects=f"{R}/{{runid}}/subjects.tsv",
    wildcard_constraints:
        runid=alternatives(SUBJECT_RUNS),
    priority: 1  # the longest runs: start them first
