"""Data: the generated demo cohort(s), cohort preprocessing, MNIST digits and sinusoids."""


# Generated into <results>/cohorts/<name>/ when absent. A checkpoint: the raw files (whose
# names hold random subject IDs) become inputs of the preprocessing jobs once it has run.
checkpoint make_demo_cohort:
    output:
        cfg=f"{R}/cohorts/{{cohort}}/cohort.yaml",
        planted=f"{R}/cohorts/{{cohort}}/planted_effect.json",
        manifest=f"{R}/cohorts/{{cohort}}/manifest.json",
    log:
        f"{R}/logs/make_demo_cohort/{{cohort}}.log",
    wildcard_constraints:
        cohort=alternatives(PLAN.generated),
    conda:
        "../envs/autospec.yaml"
    threads: 1
    params:
        outdir=lambda w: f"{R}/cohorts/{w.cohort}",
        args=lambda w: step_args.generate_args(PLAN, w.cohort),
    shell:
        "python -m autospec make-demo-cohort --out {params.outdir:q} {params.args:q} --force > {log:q} 2>&1"


rule preprocess:
    input:
        cohort_config=cohort_yaml,
        raw=cohort_raw_inputs,
    output:
        data=f"{R}/{{cohort}}/{{kind}}/data.npz",
        manifest=f"{R}/{{cohort}}/{{kind}}/data.npz.manifest.json",
    log:
        f"{R}/logs/preprocess/{{cohort}}/{{kind}}.log",
    wildcard_constraints:
        cohort=alternatives(PLAN.cohorts),
        kind="volumes|timecourses",
    conda:
        "../envs/autospec.yaml"
    threads: 1
    params:
        name=lambda w: PLAN.cohort_name(w.cohort),
        kind=lambda w: w.kind,
        extra=[],
    shell:
        "python -m autospec preprocess --cohort-config {input.cohort_config:q} --cohort {params.name:q} "
        "--kind {params.kind:q} --out {output.data:q} {params.extra:q} > {log:q} 2>&1"


# The spatial maps also give the group-mean map that the brain figure draws.
use rule preprocess as preprocess_spatialmaps with:
    output:
        data=f"{R}/{{cohort}}/spatialmaps/data.npz",
        manifest=f"{R}/{{cohort}}/spatialmaps/data.npz.manifest.json",
        mean_map=f"{R}/{{cohort}}/spatialmaps/mean_map.nii.gz",
        mean_map_manifest=f"{R}/{{cohort}}/spatialmaps/mean_map.nii.gz.manifest.json",
    log:
        f"{R}/logs/preprocess/{{cohort}}/spatialmaps.log",
    wildcard_constraints:
        cohort=alternatives(PLAN.cohorts),
    params:
        name=lambda w: PLAN.cohort_name(w.cohort),
        kind="spatialmaps",
        extra=lambda w, output: ["--mean-map", output.mean_map],


rule prepare_mnist:
    input:
        unpack(mnist_inputs),
    output:
        data=f"{R}/{{source}}/mnist/data.npz",
        manifest=f"{R}/{{source}}/mnist/data.npz.manifest.json",
    log:
        f"{R}/logs/prepare_mnist/{{source}}.log",
    wildcard_constraints:
        source=alternatives(PLAN.datasets_of("mnist")),
    conda:
        "../envs/autospec.yaml"
    threads: 1
    params:
        args=lambda w: step_args.mnist_args(PLAN, w.source),
    shell:
        "python -m autospec prepare-mnist --out {output.data:q} {params.args:q} > {log:q} 2>&1"


rule make_sinusoid:
    output:
        data=f"{R}/{{source}}/sinusoid/data.npz",
        manifest=f"{R}/{{source}}/sinusoid/data.npz.manifest.json",
    log:
        f"{R}/logs/make_sinusoid/{{source}}.log",
    wildcard_constraints:
        source=alternatives(PLAN.datasets_of("sinusoid")),
    conda:
        "../envs/autospec.yaml"
    threads: 1
    params:
        args=lambda w: step_args.sinusoid_args(PLAN, w.source),
    shell:
        "python -m autospec make-sinusoid --out {output.data:q} {params.args:q} > {log:q} 2>&1"
