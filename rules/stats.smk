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
        cell=alternatives(PLAN.diff_cells),
    conda:
        "../envs/autospec.yaml"
    threads: 1
    params:
        args=lambda w: step_args.stats_args(PLAN, w.cell),
    shell:
        "python -m autospec group-stats --spectra {input.spectra:q} --out {output:q} {params.args:q} > {log:q} 2>&1"
