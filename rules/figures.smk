"""Figures: PNG + PDF + provenance sidecar each; the PNGs go into the Snakemake report.

One rule (figure_spectra) and its variants by `use rule ... with:`: they differ in inputs,
outputs and the arguments of `autospec plot` (autospec.workflow.args), not in how they run.
"""


rule figure_spectra:
    input:
        unpack(spectra_inputs),
    output:
        **figure_outputs(
            "spectra",
            "{exp}",
            "Spectra (paper panels)",
            {"data set x model": "{exp}", "figure": "spectra"},
        ),
    log:
        f"{R}/logs/figure_spectra/{{exp}}.log",
    wildcard_constraints:
        exp=alternatives(PLAN.experiments),
    conda:
        "../envs/autospec.yaml"
    threads: 1
    params:
        args=lambda w: step_args.spectra_args(PLAN, w.exp),
    shell:
        "python -m autospec plot {params.args:q} --out-png {output.png:q} "
        "--out-pdf {output.pdf:q} --provenance-json {output.sidecar:q} > {log:q} 2>&1"


use rule figure_spectra as figure_curves with:
    input:
        curves_inputs,
    output:
        **figure_outputs(
            "curves",
            "{exp}",
            "Training curves",
            {"data set x model": "{exp}", "figure": "curves"},
        ),
    log:
        f"{R}/logs/figure_curves/{{exp}}.log",
    params:
        args=lambda w: step_args.curves_args(PLAN, w.exp),


use rule figure_spectra as figure_triptych with:
    input:
        triptych_inputs,
    output:
        **figure_outputs(
            "triptych",
            "{exp}",
            "Layer triptychs",
            {"data set x model": "{exp}", "figure": "triptych"},
        ),
    log:
        f"{R}/logs/figure_triptych/{{exp}}.log",
    wildcard_constraints:
        exp=alternatives(PLAN.triptychs),
    params:
        args=lambda w: step_args.triptych_args(PLAN, w.exp),


use rule figure_spectra as figure_brain with:
    input:
        f"{R}/{{source}}/spatialmaps/data.npz",
    output:
        **figure_outputs(
            "brain",
            "{source}/spatialmaps",
            "Input maps",
            {"cohort": "{source}", "figure": "brain"},
        ),
    log:
        f"{R}/logs/figure_brain/{{source}}.log",
    wildcard_constraints:
        source=alternatives(PLAN.brain),
    params:
        args=lambda w: step_args.brain_args(PLAN, w.source),
