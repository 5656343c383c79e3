"""Group statistics of the difference panels: paper tests, seed- and subject-level tests, FDR."""


rule group_stats:
    input:
        unpack(stats_inputs),
    output:
        directory(f"{R}/{{cell}}/stats"),
    log:
        f"{R}/logs/group_stats/{{cell}}.log",
    benchmark:
        f"{R}/benchmarks/group_stats/{{cell}}.tsv"
    wildcard_constraints:
        cell=alternatives(DIFF_CELLS),
    conda:
        "../envs/autospec.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=RES["runtime"],
    params:
        args=stats_args,
    shell:
        "python -m autospec group-stats --spectra {input.spectra} --out {output} {params.args} > {log} 2>&1"
