"""Input and parameter functions of the rules: thin look-ups in the study plan (PLAN).

The plan itself (which data sets, runs, tests and figures; every name and path) is
autospec.workflow.plan_study; the steps' argument lists are autospec.workflow.args. Every value
that reaches a shell is quoted there by `{...:q}` (one shell word per list element).
"""

import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod

from autospec.workflow import args as step_args

R = PLAN.results


# Every step is `python -m autospec <cmd>`. Without --use-conda the interpreter that runs
# Snakemake (the project's .venv) comes first on PATH, whatever the caller's PATH holds (SLURM
# jobs re-read this file); with it, the env's python, which takes the package from src/.
def _shell_prefix():
    """PATH and PYTHONPATH for every job; the paths quoted for the shell, braces doubled for shell()."""
    src = shlex.quote(str(Path(workflow.basedir) / "src"))
    exports = [f"PYTHONPATH={src}${{PYTHONPATH:+:$PYTHONPATH}}"]
    if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:
        exports.insert(0, f"PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH")
    prefix = f"set -euo pipefail; export {' '.join(exports)}; "
    return prefix.replace("{", "{{").replace(
        "}", "}}"
    )  # shell() formats the prefix too


shell.prefix(_shell_prefix())


def alternatives(names):
    """Regex matching exactly one of ``names`` (or nothing when there are none)."""
    return "|".join(re.escape(n) for n in sorted(names)) or "(?!x)x"


# ------------------------------------------------------------------ data
def cohort_yaml(wildcards):
    return PLAN.cohort_yaml(wildcards.cohort)


def _rel(path):
    p = Path(path).resolve()
    try:
        return str(p.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def cohort_raw_inputs(wildcards):
    """The raw files one kind of a cohort is made from, as its cohort.yaml names them.

    Listed as inputs so that Snakemake reruns exactly the dependent jobs when one changes. A
    generated cohort's files are known once its checkpoint has run.
    """
    from autospec.data.cohort import load_cohort_config, raw_input_files
    from autospec.errors import InputError

    if "generate" in PLAN.cohorts[wildcards.cohort]:
        checkpoints.make_demo_cohort.get(cohort=wildcards.cohort)
    path = cohort_yaml(wildcards)
    kind = wildcards.get("kind", "spatialmaps")
    try:
        files = raw_input_files(
            load_cohort_config(path, PLAN.cohort_name(wildcards.cohort)), kind
        )
    except InputError as err:
        raise WorkflowError(f"config field cohorts.{wildcards.cohort}: {err}") from None
    return [_rel(f) for f in files]


def mnist_inputs(wildcards):
    d = PLAN.config["datasets"][wildcards.source]
    return (
        {"idx_images": d["idx_images"], "idx_labels": d["idx_labels"]}
        if d["idx_images"]
        else {}
    )


# ------------------------------------------------------------------ training and statistics
def stats_inputs(wildcards):
    cell = wildcards.cell
    return {
        "spectra": PLAN.seed_files(cell, "spectra.parquet"),
        "run_json": PLAN.seed_files(cell, "run.json"),
        "subject_spectra": PLAN.subject_spectra(cell),
    }


def run_resource(key):
    return lambda w: PLAN.run_resource(w.runid, key)


# ------------------------------------------------------------------ figures
def spectra_inputs(wildcards):
    exp = wildcards.exp
    runs = sorted({d for dirs in PLAN.panel_runs(exp).values() for d in dirs})
    panels = PLAN.experiments[exp].panels
    return {
        "spectra": [f"{d}/spectra.parquet" for d in runs],
        "run_json": [f"{d}/run.json" for d in runs],
        "stats": [f"{R}/{panels[lab]}/stats" for lab in PLAN.diff_labels(exp)],
    }


def curves_inputs(wildcards):
    return [f"{d}/metrics.tsv" for d in PLAN.curve_runs(wildcards.exp).values()]


def triptych_inputs(wildcards):
    return [f"{PLAN.triptych_run(wildcards.exp)}/spectra.parquet"]


def figure_outputs(name, where, category, labels):
    """PNG (in the report), PDF and provenance sidecar of one figure."""
    base = f"{R}/{where}/figures/{name}"
    png = report(
        f"{base}.png", caption=f"../report/{name}.rst", category=category, labels=labels
    )
    return {"png": png, "pdf": f"{base}.pdf", "sidecar": f"{base}.prov.json"}
