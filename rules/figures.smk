"""Figures: PNG + PDF + provenance sidecar each; the PNGs go into the Snakemake report."""


rule figure_spectra:
    input:
        unpack(spectra_inputs),
    output:
        png=report(
            f"{R}/{{exp}}/figures/spectra.png",
            caption="../report/spectra.rst",
            category="Spectra (paper panels)",
            labels={"data set x model": "{exp}", "figure": "spectra"},
        ),
        pdf=f"{R}/{{exp}}/figures/spectra.pdf",
        sidecar=f"{R}/{{exp}}/figures/spectra.prov.json",
    log:
        f"{R}/logs/figure_spectra/{{exp}}.log",
    wildcard_constraints:
        exp=alternatives(EXPERIMENTS),
    conda:
        "../envs/autospec.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=RES["runtime"],
    params:
        args=spectra_args,
    shell:
        "python -m autospec plot --kind spectra {params.args} --out-png {output.png} "
        "--out-pdf {output.pdf} --provenance-json {output.sidecar} > {log} 2>&1"


rule figure_curves:
    input:
        curves_inputs,
    output:
        png=report(
            f"{R}/{{exp}}/figures/curves.png",
            caption="../report/curves.rst",
            category="Training curves",
            labels={"data set x model": "{exp}", "figure": "curves"},
        ),
        pdf=f"{R}/{{exp}}/figures/curves.pdf",
        sidecar=f"{R}/{{exp}}/figures/curves.prov.json",
    log:
        f"{R}/logs/figure_curves/{{exp}}.log",
    wildcard_constraints:
        exp=alternatives(EXPERIMENTS),
    conda:
        "../envs/autospec.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=RES["runtime"],
    params:
        args=curves_args,
    shell:
        "python -m autospec plot --kind curves {params.args} --out-png {output.png} "
        "--out-pdf {output.pdf} --provenance-json {output.sidecar} > {log} 2>&1"


rule figure_triptych:
    input:
        triptych_inputs,
    output:
        png=report(
            f"{R}/{{exp}}/figures/triptych.png",
            caption="../report/triptych.rst",
            category="Layer triptychs",
            labels={"data set x model": "{exp}", "figure": "triptych"},
        ),
        pdf=f"{R}/{{exp}}/figures/triptych.pdf",
        sidecar=f"{R}/{{exp}}/figures/triptych.prov.json",
    log:
        f"{R}/logs/figure_triptych/{{exp}}.log",
    wildcard_constraints:
        exp=alternatives(TRIPTYCHS),
    conda:
        "../envs/autospec.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=RES["runtime"],
    params:
        args=triptych_args,
    shell:
        "python -m autospec plot --kind triptych {params.args} --out-png {output.png} "
        "--out-pdf {output.pdf} --provenance-json {output.sidecar} > {log} 2>&1"


rule figure_brain:
    input:
        f"{R}/{{source}}/spatialmaps/data.npz",
    output:
        png=report(
            f"{R}/{{source}}/spatialmaps/figures/brain.png",
            caption="../report/brain.rst",
            category="Input maps",
            labels={"cohort": "{source}", "figure": "brain"},
        ),
        pdf=f"{R}/{{source}}/spatialmaps/figures/brain.pdf",
        sidecar=f"{R}/{{source}}/spatialmaps/figures/brain.prov.json",
    log:
        f"{R}/logs/figure_brain/{{source}}.log",
    wildcard_constraints:
        source=alternatives(BRAIN),
    conda:
        "../envs/autospec.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=RES["runtime"],
    params:
        args=brain_args,
    shell:
        "python -m autospec plot --kind brain --dataset {input} {params.args} --out-png {output.png} "
        "--out-pdf {output.pdf} --provenance-json {output.sidecar} > {log} 2>&1"
