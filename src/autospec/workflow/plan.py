"""The study plan: every data set, training run, test and figure a validated config asks for.

:func:`plan_study` is a pure function of the validated workflow config (no Snakemake, no file
access), so the plan is unit-tested directly; the rules in ``rules/*.smk`` only look things up in
it. Names (the wildcards of the rules, each constrained to exactly the set planned here):

- ``source``: a cohort or data-set name; ``kind``: volumes, timecourses, spatialmaps, mnist, sinusoid
- ``exp``   = ``<source>/<kind>/<model>``    one data set x model pair
- ``cell``  = ``<exp>/<task>/<variant>``     one training setting (variant e.g. ``h32-relu``)
- ``runid`` = ``<cell>/seed<k>``             one training run

Under <results>/: ``<runid>/`` a run, ``<cell>/stats/`` its group tests, ``<exp>/figures/``
the figures, ``<source>/<kind>/data.npz`` the prepared data, ``cohorts/<name>/`` a generated
cohort, ``logs/`` and ``benchmarks/`` per job.

Each run's settings are validated against the run schema here (the same check ``autospec
train`` makes), so a bad value stops the plan, naming the field, before any job runs.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError
from ..validation import describe, fill_and_validate, more_problems, packaged_schema


@dataclass(frozen=True)
class Cell:
    """One training setting (data set x model x task x widths x activation), trained per seed."""

    name: str
    model: dict[str, Any]
    training: dict[str, Any]
    recording: dict[str, Any]
    resources: dict[str, Any]
    seeds: tuple[int, ...]
    difference: bool
    attempts: int = 1


@dataclass(frozen=True)
class Experiment:
    """One data set x model pair: its panels (label -> cell), triptych (cell, weight) and marking test."""

    name: str
    panels: dict[str, str]
    triptych: tuple[str, str] | None
    test: str | None


@dataclass
class StudyPlan:
    config: dict[str, Any]
    results: str
    study: str
    sources: dict[str, tuple[str, tuple[str, ...]]]  # name -> (cohort | dataset, kinds)
    experiments: dict[str, Experiment]
    cells: dict[str, Cell]
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # runid -> run settings (no data)

    # ------------------------------------------------------------------ names
    @property
    def cohorts(self) -> dict[str, dict[str, Any]]:
        return {n: c for n, c in self.config["cohorts"].items() if c["enabled"]}

    @property
    def generated(self) -> list[str]:
        return [n for n, c in self.cohorts.items() if "generate" in c]

    def datasets_of(self, kind: str) -> list[str]:
        return [n for n, (t, k) in self.sources.items() if t == "dataset" and k == (kind,)]

    @property
    def brain(self) -> list[str]:
        return [n for n, c in self.cohorts.items() if "spatialmaps" in c["datasets"]]

    @property
    def subject_runs(self) -> list[str]:
        return [r for r, s in self.runs.items() if s["recording"]["subjects"]]

    @property
    def plain_runs(self) -> list[str]:
        return [r for r, s in self.runs.items() if not s["recording"]["subjects"]]

    @property
    def diff_cells(self) -> list[str]:
        return [c for c, v in self.cells.items() if v.difference]

    @property
    def triptychs(self) -> list[str]:
        return [e for e, v in self.experiments.items() if v.triptych]

    # ------------------------------------------------------------------ paths
    def data_path(self, path: str) -> str:
        """Prepared data of an exp / cell / runid (or of ``<source>/<kind>``)."""
        source, kind = Path(path).parts[:2]
        return f"{self.results}/{source}/{kind}/data.npz"

    def cohort_name(self, cohort: str) -> str:
        return self.cohorts[cohort]["name"] or cohort

    def cohort_yaml(self, cohort: str) -> str:
        c = self.cohorts[cohort]
        return f"{self.results}/cohorts/{cohort}/cohort.yaml" if "generate" in c else safe_path(c["config"])

    def run_dir(self, cell: str, seed: int) -> str:
        return f"{self.results}/{cell}/seed{seed}"

    def seed_files(self, cell: str, name: str) -> list[str]:
        return [f"{self.run_dir(cell, k)}/{name}" for k in self.cells[cell].seeds]

    def subject_spectra(self, cell: str) -> list[str]:
        runid = f"{cell}/seed{self.cells[cell].seeds[0]}"
        return [f"{self.results}/{runid}/subject_spectra.parquet"] if runid in self.subject_runs else []

    def panel_runs(self, exp: str) -> dict[str, list[str]]:
        """Panel label -> run directories (every seed for difference panels, else the first)."""
        out = {}
        for label, cell in self.experiments[exp].panels.items():
            seeds = self.cells[cell].seeds
            out[label] = [self.run_dir(cell, k) for k in (seeds if self.is_difference(label) else seeds[:1])]
        return out

    def is_difference(self, label: str) -> bool:
        return bool(self.config["panels"][label]["difference"])

    def diff_labels(self, exp: str) -> list[str]:
        return [lab for lab in self.experiments[exp].panels if self.is_difference(lab)]

    def curve_runs(self, exp: str) -> dict[str, str]:
        """One curve per training setting (first seed), labelled with the panels that share it."""
        labels: dict[str, list[str]] = {}
        for lab, cell in self.experiments[exp].panels.items():
            labels.setdefault(cell, []).append(lab)
        out = {}
        for cell, labs in labels.items():
            task, variant = Path(cell).parts[-2:]
            out[f"{','.join(labs)} {'AE' if task == 'autoencode' else 'Cls'} {variant}"] = self.run_dir(
                cell, self.cells[cell].seeds[0]
            )
        return out

    def triptych_run(self, exp: str) -> str:
        cell = self.experiments[exp].triptych[0]  # type: ignore[index]
        return self.run_dir(cell, self.cells[cell].seeds[0])

    def final_targets(self) -> list[str]:
        out = []
        for exp, e in self.experiments.items():
            names = ["spectra", "curves"] + (["triptych"] if e.triptych else [])
            out += [f"{self.results}/{exp}/figures/{n}.{ext}" for n in names for ext in ("png", "pdf")]
        out += [f"{self.results}/{s}/spatialmaps/figures/brain.{ext}" for s in self.brain for ext in ("png", "pdf")]
        return out + [f"{self.results}/{cell}/stats" for cell in self.diff_cells]

    # ------------------------------------------------------------------ runs
    def run_yaml(self, runid: str) -> str:
        """The run's settings as the run.yaml ``autospec train`` reads (validated there again)."""
        data = os.path.relpath(self.data_path(runid), f"{self.results}/{runid}")  # relative to the file
        head = f"# Run {runid} of study {self.study}; written by the workflow's run_config rule.\n"
        return head + yaml.safe_dump({"data": data, **self.runs[runid]}, sort_keys=False, allow_unicode=True)

    def run_threads(self, runid: str) -> int:
        return self.runs[runid]["training"]["threads"] or 1

    def run_resource(self, runid: str, key: str) -> Any:
        """A training job's resource; ``runtime`` is capped at ``resources.max_runtime``."""
        value = self.cells[Path(runid).parent.as_posix()].resources[key]
        limit = self.config["resources"]["max_runtime"]
        return min(value, limit) if key == "runtime" and limit else value

    def run_attempts(self, runid: str) -> int:
        """Jobs the run may take (each resumes from the last one's checkpoint)."""
        return self.cells[Path(runid).parent.as_posix()].attempts

    @property
    def train_retries(self) -> int:
        """The training rules' ``retries``: the most resubmissions any run may need."""
        return max((c.attempts for c in self.cells.values()), default=1) - 1

    def run_gpu(self, runid: str) -> int:
        return int(self.runs[runid]["training"]["device"] == "cuda")


def safe_path(path: str) -> str:
    """A path that no command line reads as an option (``-x`` -> ``./-x``)."""
    return f"./{path}" if path.startswith("-") else path


def variant_name(widths: list[int], activation: str) -> str:
    return f"h{'x'.join(str(w) for w in widths)}-{activation}"


def _sources(config: dict[str, Any]) -> dict[str, tuple[str, tuple[str, ...]]]:
    sources = {n: ("cohort", tuple(c["datasets"])) for n, c in config["cohorts"].items() if c["enabled"]}
    for name, d in config["datasets"].items():
        if name in config["cohorts"]:
            raise InputError(f"config field datasets.{name}: also a cohort's name; names must be unique")
        if d["kind"] == "mnist" and bool(d.get("idx_images")) != bool(d.get("idx_labels")):
            raise InputError(f"config field datasets.{name}: give both idx_images and idx_labels, or neither")
        if d["enabled"]:
            sources[name] = ("dataset", (d["kind"],))
    return sources


def _cell(
    config: dict[str, Any], pair: dict[str, Any], *, model: str, label: str, exp: str, cells: dict[str, dict[str, Any]]
) -> str:
    """Register (or extend) the cell of one panel of one pair; returns its name."""
    p = config["panels"][label]
    hidden = [max(1, round(w * pair["width_scale"])) for w in p["hidden"]]
    name = f"{exp}/{p['task']}/{variant_name(hidden, p['activation'])}"
    c = cells.setdefault(
        name,
        {
            "seeds": set(),
            "difference": False,
            "model": {
                "family": model,
                "task": p["task"],
                "hidden": hidden,
                "activation": p["activation"],
                "options": pair["options"],
            },
            "training": {**config["training"], **pair.get("training", {})},
            "recording": {**config["recording"], **pair.get("recording", {})},
            "resources": {**config["resources"]["train"], **pair.get("resources", {})},
        },
    )
    c["seeds"].update(config["seeds"] if p["difference"] else config["seeds"][:1])
    c["difference"] |= p["difference"]
    return name


def _experiments(
    config: dict[str, Any], sources: dict[str, tuple[str, tuple[str, ...]]]
) -> tuple[dict[str, Experiment], dict[str, dict[str, Any]]]:
    experiments: dict[str, Experiment] = {}
    cells: dict[str, dict[str, Any]] = {}
    for source, (_type, kinds) in sources.items():
        for kind in kinds:
            for model, pair in (config["experiments"].get(kind) or {}).items():
                if not pair["enabled"]:
                    continue
                exp = f"{source}/{kind}/{model}"
                labels = pair["panels"] or list(config["panels"])
                panels = {}
                for label in labels:
                    if label not in config["panels"]:
                        raise InputError(f"config field experiments.{kind}.{model}.panels: no panel {label!r}")
                    panels[label] = _cell(config, pair, model=model, label=label, exp=exp, cells=cells)
                key = pair["triptych_key"] or config["figures"]["triptych_keys"].get(model)
                first = panels[labels[0]]
                has = {"act", "delta"} <= set(cells[first]["recording"]["stats"])
                test = pair["marking_test"] or config["figures"]["test"]
                experiments[exp] = Experiment(exp, panels, (first, key) if key and has else None, test)
    if not experiments:
        raise InputError("config: no experiments: no enabled cohort or data set has a model in `experiments`")
    return experiments, cells


def _attempts(name: str, c: dict[str, Any], limit: int | None) -> int:
    """Jobs one run of cell ``name`` may take under the wall-time limit (see docs/workflow.md)."""
    runtime, given = c["resources"]["runtime"], c["resources"].get("attempts")
    where = f"config: {name}: resources.runtime {runtime} min"
    if not limit or runtime <= limit:
        return int(given or 1)
    # each resubmission repeats at most one checkpoint interval, hence the spare job
    attempts = int(given or -(-runtime // limit) + 1)
    if attempts * limit < runtime:
        raise InputError(f"{where} does not fit in {attempts} job(s) of resources.max_runtime {limit} min")
    if not c["training"]["checkpoint_every"]:
        raise InputError(
            f"{where} is over resources.max_runtime {limit} min and training.checkpoint_every is 0: "
            "a resubmitted job would start again from epoch 0; set checkpoint_every (autospec estimate sizes it)"
        )
    return attempts


def _check_run(runid: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The run's settings checked against the run schema, its defaults filled (as autospec train does)."""
    block = copy.deepcopy({"data": "data.npz", **settings})
    problem = fill_and_validate(block, packaged_schema("run.schema.yaml"))
    if problem:
        path, msg = describe(problem[0])
        raise InputError(f"config: run {runid}: run config field {path}: {msg}{more_problems(problem[1])}")
    block.pop("data")
    return block


def _runs(cells: dict[str, Cell], split: Any) -> dict[str, dict[str, Any]]:
    runs = {}
    for name, c in cells.items():
        for k in c.seeds:
            # per-subject spectra feed the subject-level tests of difference cells: first seed only
            subjects = bool(c.recording["subjects"] and c.difference and k == c.seeds[0])
            settings = {
                "model": c.model,
                "training": {**c.training, "seed": k},
                "recording": {**c.recording, "groups": True, "subjects": subjects},
                "split": copy.deepcopy(split),
            }
            runs[f"{name}/seed{k}"] = _check_run(f"{name}/seed{k}", settings)
    return runs


def plan_study(config: dict[str, Any]) -> StudyPlan:
    """The plan of a validated workflow config (:func:`~autospec.workflow.validate_workflow_config`).

    Raises
    ------
    InputError
        A config the schema cannot express as wrong: a data set named like a cohort, a panel that
        does not exist, nothing to do, or run settings the run schema refuses.
    """
    sources = _sources(config)
    experiments, raw_cells = _experiments(config, sources)
    seeds, limit = config["seeds"], config["resources"]["max_runtime"]
    cells = {
        name: Cell(
            name,
            c["model"],
            c["training"],
            c["recording"],
            c["resources"],
            tuple(k for k in seeds if k in c["seeds"]),
            c["difference"],
            _attempts(name, c, limit),
        )
        for name, c in raw_cells.items()
    }
    results = safe_path(Path(config["results"]).as_posix())
    plan = StudyPlan(config, results, config["study"], sources, experiments, cells)
    plan.runs = _runs(cells, config.get("split", "none"))
    return plan


def load_study(config: dict[str, Any], schema_path: os.PathLike[str] | str) -> StudyPlan:
    """Validate ``config`` in place (defaults filled) and plan it; InputError names the field."""
    from .config import validate_workflow_config

    return plan_study(validate_workflow_config(config, schema_path))
