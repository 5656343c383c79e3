"""The study plan, resolved once from the validated config, and the helpers of every rule.

Wildcards (each constrained to exactly the set the config asks for):

- ``source``: a cohort or data-set name; ``kind``: volumes, timecourses, spatialmaps, mnist, sinusoid
- ``exp``   = ``<source>/<kind>/<model>``    one data set x model pair
- ``cell``  = ``<exp>/<task>/<variant>``     one training setting (variant e.g. ``h32-relu``)
- ``runid`` = ``<cell>/seed<k>``             one training run

Under <results>/: ``<runid>/`` a run, ``<cell>/stats/`` its group tests, ``<exp>/figures/``
the figures, ``<source>/<kind>/data.npz`` the prepared data, ``cohorts/<name>/`` a generated
cohort, ``logs/`` and ``benchmarks/`` per job.
"""

import os
import re
import shlex
import sys
from pathlib import Path

import yaml

from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod

R = Path(config["results"]).as_posix()
STUDY = config["study"]
RES = config["resources"]["default"]
FIG = config["figures"]
SEEDS = config["seeds"]

# Every step is `python -m autospec <cmd>`. Without --use-conda the interpreter that runs
# Snakemake (the project's .venv) comes first on PATH, whatever the caller's PATH holds (SLURM
# jobs re-read this file); with it, the env's python, which takes the package from src/.
_BIN = Path(sys.executable).parent
_SRC = Path(workflow.basedir) / "src"
_EXPORTS = [
    f'PYTHONPATH="{_SRC}${{{{PYTHONPATH:+:$PYTHONPATH}}}}"'
]  # braces: shell() formats the prefix too
if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:
    _EXPORTS.insert(0, f'PATH="{_BIN}:$PATH"')
shell.prefix(f"set -euo pipefail; export {' '.join(_EXPORTS)}; ")


def config_error(msg):
    """Stop with one line naming the config field."""
    raise WorkflowError(f"config: {msg}")


def alternatives(names):
    """Regex matching exactly one of ``names`` (or nothing when there are none)."""
    return "|".join(re.escape(n) for n in sorted(names)) or "(?!x)x"


def variant_name(widths, activation):
    return f"h{'x'.join(str(w) for w in widths)}-{activation}"


# ------------------------------------------------------------------ sources, experiments, runs
SOURCES = {}  # name -> (type, [kinds])
for _name, _c in config["cohorts"].items():
    if _c["enabled"]:
        SOURCES[_name] = ("cohort", list(_c["datasets"]))
for _name, _d in config["datasets"].items():
    if _name in config["cohorts"]:
        config_error(f"datasets.{_name}: also a cohort's name; names must be unique")
    if _d["enabled"]:
        SOURCES[_name] = ("dataset", [_d["kind"]])
_COH = {n: c for n, c in config["cohorts"].items() if c["enabled"]}
GENERATED = [n for n, c in _COH.items() if "generate" in c]
COHORTS = list(_COH)
MNIST = [n for n, (t, k) in SOURCES.items() if k == ["mnist"] and t == "dataset"]
SINUSOID = [n for n, (t, k) in SOURCES.items() if k == ["sinusoid"] and t == "dataset"]
BRAIN = [n for n, c in _COH.items() if "spatialmaps" in c["datasets"]]

EXPERIMENTS = {}  # exp -> {panels: {label: cell}, triptych: (cell, key) | None}
CELLS = {}  # cell -> {seeds, difference, model, training, recording, resources}
for _source, (_type, _kinds) in SOURCES.items():
    for _kind in _kinds:
        for _model, _s in config["experiments"].get(_kind, {}).items():
            if not _s["enabled"]:
                continue
            _exp = f"{_source}/{_kind}/{_model}"
            _labels = _s["panels"] or list(config["panels"])
            _panels = {}
            for _label in _labels:
                if _label not in config["panels"]:
                    config_error(
                        f"experiments.{_kind}.{_model}.panels: no panel {_label!r}"
                    )
                _p = config["panels"][_label]
                _hidden = [max(1, round(w * _s["width_scale"])) for w in _p["hidden"]]
                _cell = f"{_exp}/{_p['task']}/{variant_name(_hidden, _p['activation'])}"
                _c = CELLS.setdefault(_cell, {"seeds": set(), "difference": False,
                    "model": {"family": _model, "task": _p["task"], "hidden": _hidden,
                              "activation": _p["activation"], "options": _s["options"]},
                    "training": {**config["training"], **_s.get("training", {})},
                    "recording": {**config["recording"], **_s.get("recording", {})},
                    "resources": {**config["resources"]["train"], **_s.get("resources", {})}})  # fmt: skip
                _c["seeds"].update(SEEDS if _p["difference"] else SEEDS[:1])
                _c["difference"] |= _p["difference"]
                _panels[_label] = _cell
            _key = _s["triptych_key"] or FIG["triptych_keys"].get(_model)
            _first = _panels[_labels[0]]
            _has = {"act", "delta"} <= set(CELLS[_first]["recording"]["stats"])
            EXPERIMENTS[_exp] = {"panels": _panels, "triptych": (_first, _key) if _key and _has else None,
                                 "test": _s["marking_test"] or FIG["test"]}  # fmt: skip
if not EXPERIMENTS:
    config_error(
        "no experiments: no enabled cohort or data set has a model in `experiments`"
    )

RUNS = {}  # runid -> run settings for `autospec write-run-config`
for _cell, _c in CELLS.items():
    _c["seeds"] = [k for k in SEEDS if k in _c["seeds"]]
    for _k in _c["seeds"]:
        # per-subject spectra feed the subject-level tests of difference cells: first seed only
        _subj = bool(
            _c["recording"]["subjects"] and _c["difference"] and _k == _c["seeds"][0]
        )
        RUNS[f"{_cell}/seed{_k}"] = {"model": _c["model"], "training": {**_c["training"], "seed": _k},
                                     "recording": {**_c["recording"], "groups": True, "subjects": _subj}}  # fmt: skip
SUBJECT_RUNS = [r for r, s in RUNS.items() if s["recording"]["subjects"]]
PLAIN_RUNS = [r for r in RUNS if r not in SUBJECT_RUNS]
DIFF_CELLS = [c for c, v in CELLS.items() if v["difference"]]
TRIPTYCHS = [e for e, v in EXPERIMENTS.items() if v["triptych"]]


# ------------------------------------------------------------------ data
def data_path(path):
    """Prepared data of an exp / cell / runid."""
    source, kind = Path(path).parts[:2]
    return f"{R}/{source}/{kind}/data.npz"


def cohort_name(cohort):
    return _COH[cohort]["name"] or cohort


def cohort_yaml(wildcards):
    c = _COH[wildcards.cohort]
    return (
        f"{R}/cohorts/{wildcards.cohort}/cohort.yaml"
        if "generate" in c
        else c["config"]
    )


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

    if "generate" in _COH[wildcards.cohort]:
        checkpoints.make_demo_cohort.get(cohort=wildcards.cohort)
    path, name = cohort_yaml(wildcards), cohort_name(wildcards.cohort)
    kind = wildcards.get("kind", "spatialmaps")
    try:
        files = raw_input_files(load_cohort_config(path, name), kind)
    except InputError as err:
        config_error(f"cohorts.{wildcards.cohort}: {err} (in {path})")
    return [_rel(f) for f in files]


def generate_args(wildcards):
    g = _COH[wildcards.cohort]["generate"]
    args = [f"--seed {g['seed']} --effect {g['effect']}"] + (
        ["--small"] if g["small"] else []
    )
    opt = {"--n-sz": g["n_sz"], "--n-hc": g["n_hc"], "--grid-mm": g["grid_mm"]}
    return " ".join(args + [f"{k} {v}" for k, v in opt.items() if v is not None])


def mnist_inputs(wildcards):
    d = config["datasets"][wildcards.source]
    if bool(d["idx_images"]) != bool(d["idx_labels"]):
        config_error(
            f"datasets.{wildcards.source}: give both idx_images and idx_labels, or neither"
        )
    return (
        {"idx_images": d["idx_images"], "idx_labels": d["idx_labels"]}
        if d["idx_images"]
        else {}
    )


def mnist_args(wildcards):
    d = config["datasets"][wildcards.source]
    args = [f"--seed {d['seed']} --groups {d['groups']}"]
    args += [f"--n-per-class {d['n_per_class']}"] if d["n_per_class"] else []
    args += (
        [f"--idx-images {d['idx_images']} --idx-labels {d['idx_labels']}"]
        if d["idx_images"]
        else []
    )
    return " ".join(args)


def sinusoid_args(wildcards):
    d = config["datasets"][wildcards.source]
    return (f"--n-per-class {d['n_per_class']} --n-classes {d['n_classes']} --length {d['length']} "
            f"--kind {d['signal']} --noise {d['noise']} --seed {d['seed']}")  # fmt: skip


# ------------------------------------------------------------------ training and statistics
def run_yaml(wildcards):
    """The run's settings as the run.yaml `autospec train` reads (validated there)."""
    runid = wildcards.runid
    data = os.path.relpath(
        data_path(runid), f"{R}/{runid}"
    )  # relative to the file's directory
    head = (
        f"# Run {runid} of study {STUDY}; written by the workflow's run_config rule.\n"
    )
    return head + yaml.safe_dump({"data": data, **RUNS[runid]}, sort_keys=False)


def run_threads(wildcards):
    return RUNS[wildcards.runid]["training"]["threads"]


def run_resource(key):
    return lambda w: CELLS[Path(w.runid).parent.as_posix()]["resources"][key]


def run_gpu(wildcards):
    return int(RUNS[wildcards.runid]["training"]["device"] == "cuda")


def seed_files(cell, name):
    return [f"{R}/{cell}/seed{k}/{name}" for k in CELLS[cell]["seeds"]]


def subject_spectra(cell):
    runid = f"{cell}/seed{CELLS[cell]['seeds'][0]}"
    return [f"{R}/{runid}/subject_spectra.parquet"] if runid in SUBJECT_RUNS else []


def stats_inputs(wildcards):
    cell = wildcards.cell
    return {"spectra": seed_files(cell, "spectra.parquet"), "run_json": seed_files(cell, "run.json"),
            "subject_spectra": subject_spectra(cell)}  # fmt: skip


def stats_args(wildcards):
    s, subj = config["stats"], subject_spectra(wildcards.cell)
    args = [f"--permutations {s['permutations']} --seed {s['seed']}"]
    args += [] if s["size_normalisation"] else ["--no-size-normalisation"]
    return " ".join(args + ([f"--subject-spectra {subj[0]}"] if subj else []))


# ------------------------------------------------------------------ figures
def provenance_args(rule, **wildcards):
    wc = ",".join(f"{k}={v}" for k, v in wildcards.items())
    return f"--rule {rule} --wildcards {shlex.quote(wc)} --params study={shlex.quote(STUDY)}"


def panel_runs(exp):
    """Panel label -> run directories (every seed for difference panels, else the first)."""
    out = {}
    for label, cell in EXPERIMENTS[exp]["panels"].items():
        seeds = (
            CELLS[cell]["seeds"]
            if config["panels"][label]["difference"]
            else CELLS[cell]["seeds"][:1]
        )
        out[label] = [f"{R}/{cell}/seed{k}" for k in seeds]
    return out


def diff_labels(exp):
    return [
        lab for lab in EXPERIMENTS[exp]["panels"] if config["panels"][lab]["difference"]
    ]


def spectra_inputs(wildcards):
    exp = wildcards.exp
    runs = sorted({d for dirs in panel_runs(exp).values() for d in dirs})
    return {"spectra": [f"{d}/spectra.parquet" for d in runs], "run_json": [f"{d}/run.json" for d in runs],
            "stats": [f"{R}/{EXPERIMENTS[exp]['panels'][lab]}/stats" for lab in diff_labels(exp)]}  # fmt: skip


def spectra_args(wildcards):
    exp, diff = wildcards.exp, diff_labels(wildcards.exp)
    args = [f"--panel {lab}={':'.join(dirs)}" for lab, dirs in panel_runs(exp).items()]
    args += [
        f"--stats {lab}={R}/{EXPERIMENTS[exp]['panels'][lab]}/stats" for lab in diff
    ]
    args += [
        f"--diff-panels {','.join(diff) or ','} --summary {FIG['summary']} --alpha {FIG['alpha']}"
    ]
    test = EXPERIMENTS[exp]["test"]
    args += [f"--test {test}"] if test else []
    return " ".join(args + [provenance_args("figure_spectra", exp=exp)])


def curve_runs(exp):
    """One curve per training setting (first seed), labelled with the panels that share it."""
    labels = {}
    for lab, cell in EXPERIMENTS[exp]["panels"].items():
        labels.setdefault(cell, []).append(lab)
    out = {}
    for cell, labs in labels.items():
        task, variant = Path(cell).parts[-2:]
        name = f"{','.join(labs)} {'AE' if task == 'autoencode' else 'Cls'} {variant}"
        out[name] = f"{R}/{cell}/seed{CELLS[cell]['seeds'][0]}"
    return out


def curves_inputs(wildcards):
    return [f"{d}/metrics.tsv" for d in curve_runs(wildcards.exp).values()]


def curves_args(wildcards):
    runs = [
        f"--run {shlex.quote(f'{lab}={d}')}"
        for lab, d in curve_runs(wildcards.exp).items()
    ]
    return " ".join(runs + [provenance_args("figure_curves", exp=wildcards.exp)])


def triptych_run(wildcards):
    cell = EXPERIMENTS[wildcards.exp]["triptych"][0]
    return f"{R}/{cell}/seed{CELLS[cell]['seeds'][0]}"


def triptych_inputs(wildcards):
    return [f"{triptych_run(wildcards)}/spectra.parquet"]


def triptych_args(wildcards):
    key = EXPERIMENTS[wildcards.exp]["triptych"][1]
    args = f"--run {triptych_run(wildcards)} --key {shlex.quote(key)}"
    return f"{args} {provenance_args('figure_triptych', exp=wildcards.exp)}"


def brain_args(wildcards):
    return provenance_args("figure_brain", source=wildcards.source)


def final_targets():
    out = []
    for exp, e in EXPERIMENTS.items():
        names = ["spectra", "curves"] + (["triptych"] if e["triptych"] else [])
        out += [f"{R}/{exp}/figures/{n}.{ext}" for n in names for ext in ("png", "pdf")]
    out += [
        f"{R}/{s}/spatialmaps/figures/brain.{ext}"
        for s in BRAIN
        for ext in ("png", "pdf")
    ]
    return out + [f"{R}/{cell}/stats" for cell in DIFF_CELLS]
