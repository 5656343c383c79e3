"""Command-line arguments of each workflow step, as LISTS (one element per argument).

The rules splice them into their ``shell:`` as ``{params.args:q}``: Snakemake quotes every element
separately (``shlex.quote``), so a value from the config (a path with spaces, ``$(...)``,
backticks, ``;``, quotes) reaches the step as exactly one argument and is never read by the
shell. Free-text values are passed as ``--opt=VALUE`` so that a value starting with ``-`` is not
taken for an option. Nothing here builds a shell string.
"""

from __future__ import annotations

from typing import Any

from .plan import StudyPlan


def _opt(flag: str, value: Any) -> list[str]:
    return [flag, str(value)]


def generate_args(plan: StudyPlan, cohort: str) -> list[str]:
    g = plan.cohorts[cohort]["generate"]
    args = _opt("--seed", g["seed"]) + _opt("--effect", g["effect"]) + (["--small"] if g["small"] else [])
    for flag, key in (("--n-sz", "n_sz"), ("--n-hc", "n_hc"), ("--grid-mm", "grid_mm")):
        if g[key] is not None:
            args += _opt(flag, g[key])
    return args


def mnist_args(plan: StudyPlan, source: str) -> list[str]:
    d = plan.config["datasets"][source]
    args = _opt("--seed", d["seed"]) + _opt("--groups", d["groups"])
    if d["n_per_class"]:
        args += _opt("--n-per-class", d["n_per_class"])
    if d["idx_images"]:
        args += [f"--idx-images={d['idx_images']}", f"--idx-labels={d['idx_labels']}"]
    return args


def sinusoid_args(plan: StudyPlan, source: str) -> list[str]:
    d = plan.config["datasets"][source]
    return (
        _opt("--n-per-class", d["n_per_class"])
        + _opt("--n-classes", d["n_classes"])
        + _opt("--length", d["length"])
        + _opt("--kind", d["signal"])
        + _opt("--noise", d["noise"])
        + _opt("--seed", d["seed"])
    )


def stats_args(plan: StudyPlan, cell: str) -> list[str]:
    s, subj = plan.config["stats"], plan.subject_spectra(cell)
    args = _opt("--permutations", s["permutations"]) + _opt("--seed", s["seed"])
    args += [] if s["size_normalisation"] else ["--no-size-normalisation"]
    return args + ([f"--subject-spectra={subj[0]}"] if subj else [])


def provenance_args(plan: StudyPlan, rule: str, **wildcards: str) -> list[str]:
    wc = ",".join(f"{k}={v}" for k, v in wildcards.items())
    return ["--rule", rule, f"--wildcards={wc}", f"--params=study={plan.study}"]


def spectra_args(plan: StudyPlan, exp: str) -> list[str]:
    figures, diff = plan.config["figures"], plan.diff_labels(exp)
    args = [f"--panel={lab}={':'.join(dirs)}" for lab, dirs in plan.panel_runs(exp).items()]
    args += [f"--stats={lab}={plan.results}/{plan.experiments[exp].panels[lab]}/stats" for lab in diff]
    args += [
        f"--diff-panels={','.join(diff) or ','}",
        "--summary",
        figures["summary"],
        "--alpha",
        str(figures["alpha"]),
    ]
    test = plan.experiments[exp].test
    args += ["--test", test] if test else []
    return ["--kind", "spectra", *args, *provenance_args(plan, "figure_spectra", exp=exp)]


def curves_args(plan: StudyPlan, exp: str) -> list[str]:
    runs = [f"--run={label}={d}" for label, d in plan.curve_runs(exp).items()]
    return ["--kind", "curves", *runs, *provenance_args(plan, "figure_curves", exp=exp)]


def triptych_args(plan: StudyPlan, exp: str) -> list[str]:
    key = plan.experiments[exp].triptych[1]  # type: ignore[index]
    run = ["--run", plan.triptych_run(exp), f"--key={key}"]
    return ["--kind", "triptych", *run, *provenance_args(plan, "figure_triptych", exp=exp)]


def brain_args(plan: StudyPlan, source: str) -> list[str]:
    dataset = f"--dataset={plan.data_path(f'{source}/spatialmaps')}"
    return ["--kind", "brain", dataset, *provenance_args(plan, "figure_brain", source=source)]
