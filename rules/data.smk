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
        cohort=alternatives(GENERATED),
    conda:
        "../envs/autospec.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=RES["runtime"],
    params:
        outdir=lambda w: f"{R}/cohorts/{w.cohort}",
        args=generate_args,
    shell:
        "python -m autospec make-demo-cohort --out {params.outdir} {params.args} --force > {log} 2>&1"


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
        cohort=alternatives(COHORTS),
        kind="volumes|timecourses",
    conda:
        "../envs/autospec.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=RES["runtime"],
    params:
        name=lambda w: cohort_name(w.cohort),
    shell:
        "python -m autospec preprocess --cohort-config {input.cohort_config} --cohort {params.name} "
        "--kind {wildcards.kind} --out {output.data} > {log} 2>&1"


rule preprocess_spatialmaps:
    input:
        cohort_config=cohort_yaml,
        raw=cohort_raw_inputs,
    output:
        data=f"{R}/{{cohort}}/spatialmaps/data.npz",
        manifest=f"{R}/{{cohort}}/spatialmaps/data.npz.manifest.json",
        mean_map=f"{R}/{{cohort}}/spatialmaps/mean_map.nii.gz",
        mean_map_manifest=f"{R}/{{cohort}}/spatialmaps/mean_map.nii.gz.manifest.json",
    log:
        f"{R}/logs/preprocess/{{cohort}}/spatialmaps.log",
    wildcard_constraints:
        cohort=alternatives(COHORTS),
    conda:
        "../envs/autospec.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=RES["runtime"],
    params:
        name=lambda w: cohort_name(w.cohort),
    shell:
        "python -m autospec preprocess --cohort-config {input.cohort_config} --cohort {params.name} "
        "--kind spatialmaps --out {output.data} --mean-map {output.mean_map} > {log} 2>&1"


rule prepare_mnist:
    input:
        unpack(mnist_inputs),
    output:
        data=f"{R}/{{source}}/mnist/data.npz",
        manifest=f"{R}/{{source}}/mnist/data.npz.manifest.json",
    log:
        f"{R}/logs/prepare_mnist/{{source}}.log",
    wildcard_constraints:
        source=alternatives(MNIST),
    conda:
        "../envs/autospec.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=RES["runtime"],
    params:
        args=mnist_args,
    shell:
        "python -m autospec prepare-mnist --out {output.data} {params.args} > {log} 2>&1"


rule make_sinusoid:
    output:
        data=f"{R}/{{source}}/sinusoid/data.npz",
        manifest=f"{R}/{{source}}/sinusoid/data.npz.manifest.json",
    log:
        f"{R}/logs/make_sinusoid/{{source}}.log",
    wildcard_constraints:
        source=alternatives(SINUSOID),
    conda:
        "../envs/autospec.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=RES["runtime"],
    params:
        args=sinusoid_args,
    shell:
        "python -m autospec make-sinusoid --out {output.data} {params.args} > {log} 2>&1"
