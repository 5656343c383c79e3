"""The study plan (autospec.workflow) without Snakemake: what each config plans, run settings from the
run schema (one source of truth), the steps' argument lists, and that every shell value is quoted."""

from __future__ import annotations

import copy
import os
import re
import shlex
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autospec.commands.check_config import merge
from autospec.errors import InputError
from autospec.safe_yaml import load_yaml
from autospec.training.config import validate_run_config
from autospec.validation import packaged_schema
from autospec.workflow import args as step_args
from autospec.workflow import load_study, plan_study, validate_workflow_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config/schemas/config.schema.yaml"
PAIRS = 9  # the seed paper's data set x model pairs (Table 1), the 2-D CNN on time courses included


def study(*extra: dict | str) -> dict:
    """config/config.yaml merged with config files (names under config/) or dicts, as Snakemake does."""
    cfg = load_yaml(REPO / "config/config.yaml")
    for e in extra:
        merge(cfg, load_yaml(REPO / "config" / e) if isinstance(e, str) else e)
    return cfg


def test_the_default_tiny_and_paper_studies():
    seeds = study()["seeds"]
    for extra, runs, subject_runs in (
        ((), PAIRS * (4 + 2 * len(seeds)), 6 * 2),
        (("tiny.yaml",), 15, 3),
        # the paper: one seed, A-F, T, W = 8 settings (G, H share A's and B's runs), no per-subject spectra
        (("paper.yaml",), PAIRS * 8, 0),
        # paper_plus: 10 seeds of G and H, per-subject spectra of the cohort pairs' first seeds
        (("paper.yaml", "paper_plus.yaml"), PAIRS * (6 + 2 * 10), 6 * 2),
    ):
        plan = load_study(study(*extra), SCHEMA)
        assert len(plan.runs) == runs and len(plan.subject_runs) == subject_runs, extra
        assert len(plan.experiments) == (5 if extra == ("tiny.yaml",) else PAIRS)
        assert len(plan.diff_cells) == (5 if extra == ("tiny.yaml",) else 2 * PAIRS)
        assert all(r.startswith(plan.results + "/") for r in plan.final_targets())
    plan = load_study(study(), SCHEMA)
    # sigma(A), sigma(Delta) are not recorded for the 2-D/3-D CNNs (config: stats [grad]): no triptych there
    assert sorted(plan.triptychs) == sorted(e for e in plan.experiments if not e.endswith(("cnn2d", "cnn3d")))
    assert len(plan.triptychs) == 6
    assert sorted(plan.brain) == ["demo"] and plan.generated == ["demo"]
    assert plan.datasets_of("mnist") == ["mnist"] and plan.datasets_of("sinusoid") == ["sinusoid"]


def test_default_study_figures_use_the_recommended_test():
    """Issue 9: the default study's difference panels are marked by the recommended test, passed to plot."""
    from autospec.stats.recommended import MARKING_TESTS, RECOMMENDED_TEST

    plan = load_study(study(), SCHEMA)
    stem = next(s for s, t in MARKING_TESTS.items() if t == RECOMMENDED_TEST)
    assert plan.config["figures"]["test"] == stem
    for exp in plan.experiments:
        args = step_args.spectra_args(plan, exp)
        assert args[args.index("--test") + 1] == stem, exp
    # the schema's default is the same, and a pair may still pick the paper's view (a)
    bare = validate_workflow_config(
        {"datasets": {"s": {"kind": "sinusoid"}}, "experiments": {"sinusoid": {"elman": {}}}}, SCHEMA
    )
    assert bare["figures"]["test"] == stem
    other = load_study(study({"experiments": {"volumes": {"mlp": {"marking_test": "paper_step_tests"}}}}), SCHEMA)
    exp = next(e for e in other.experiments if e.endswith("volumes/mlp"))
    args = step_args.spectra_args(other, exp)
    assert args[args.index("--test") + 1] == "paper_step_tests"


def test_split_in_the_workflow_config_reaches_every_run():
    """Issue 9: `split:` is set once in the study config; every run trains on the same subjects."""
    plan = load_study(study(), SCHEMA)
    assert {load_yaml(plan.run_yaml(r))["split"] for r in plan.runs} == {"none"}  # the paper's default
    held = load_study(study({"split": {"holdout": 0.2, "seed": 3}}), SCHEMA)
    splits = [load_yaml(held.run_yaml(r))["split"] for r in held.runs]
    assert splits and all(s == {"holdout": 0.2, "seed": 3} for s in splits)
    for bad, field in (({"holdout": 1.5}, "split"), ({"folds": 3}, "split"), ("some", "split")):
        with pytest.raises(InputError, match=field):
            load_study(study({"split": bad}), SCHEMA)


def test_run_settings_come_from_the_run_schema():
    """One source of truth: a study that sets nothing gets exactly the run schema's defaults."""
    cfg = {"datasets": {"sin": {"kind": "sinusoid"}}, "experiments": {"sinusoid": {"elman": {}}}}
    plan = plan_study(validate_workflow_config(cfg, SCHEMA))
    (runid, run), *_ = plan.runs.items()
    defaults = validate_run_config({"data": "x", "model": {"family": "elman"}})
    assert run["training"] == {**defaults["training"], "seed": 0}
    assert run["recording"] == defaults["recording"]
    assert run["training"]["device"] == "auto" and run["training"]["checkpoint_every"] == 5
    assert plan.run_threads(runid) == 1 and plan.run_gpu(runid) == 0  # threads: null -> one Snakemake thread
    # the workflow schema's training block IS the run schema's (by $ref): same fields, same bounds
    wf = load_yaml(SCHEMA)
    assert wf["properties"]["training"]["allOf"][0]["$ref"].endswith("run.schema.yaml#/properties/training")
    run_fields = set(packaged_schema("run.schema.yaml")["properties"]["training"]["properties"])
    assert set(cfg["training"]) == run_fields


def test_overrides_merge_without_defaults_and_runs_are_checked():
    cfg = study({"training": {"lr": 0.02}, "experiments": {"mnist": {"mlp": {"training": {"epochs": 4}}}}})
    plan = load_study(cfg, SCHEMA)
    runs = {rid: r for rid, r in plan.runs.items() if rid.startswith("mnist/mnist/mlp/")}
    assert runs and all(r["training"]["epochs"] == 4 and r["training"]["lr"] == 0.02 for r in runs.values())
    others = [r for rid, r in plan.runs.items() if not rid.startswith("mnist/mnist/mlp/")]
    assert all(r["training"]["epochs"] == 15 and r["training"]["lr"] == 0.02 for r in others)
    # a combination only the run schema refuses, found while planning, naming the run
    bad = study({"experiments": {"mnist": {"mlp": {"options": {"x": 1}, "recording": {"subject_keys": []}}}}})
    with pytest.raises(
        InputError, match=r"config field experiments.mnist.mlp.recording.subject_keys: \[\] should be non-empty"
    ):
        load_study(bad, SCHEMA)


def test_yaml11_number_strings_from_snakemake_are_numbers():
    """Snakemake reads config files with YAML 1.1 (``lr: 1e-3`` is a string) and nested --config
    values as strings; the schema's numbers are read as YAML 1.2 would."""
    cfg = study({"training": {"lr": "1e-3", "epochs": "7"}, "stats": {"permutations": "99"}})
    validate_workflow_config(cfg, SCHEMA)
    assert cfg["training"]["lr"] == 0.001 and cfg["training"]["epochs"] == 7 and cfg["stats"]["permutations"] == 99
    with pytest.raises(InputError, match=r"config field training.epochs: 'seven' is not of type 'integer'"):
        validate_workflow_config(study({"training": {"epochs": "seven"}}), SCHEMA)
    with pytest.raises(InputError, match=r"config field study: 12 is not of type 'string'"):
        validate_workflow_config(study({"study": 12}), SCHEMA)  # no coercion the other way


def test_argument_lists_keep_hostile_values_whole():
    nasty = "a b $(touch PWNED) `x`; y && 'q\" é"
    cfg = study(
        {
            "study": nasty,
            "results": f"out {nasty}",
            "datasets": {"mnist": {"idx_images": f"-{nasty}.idx", "idx_labels": "l.idx"}},
            "figures": {"triptych_keys": {"mlp": f"-{nasty}"}},
        }
    )
    plan = load_study(cfg, SCHEMA)
    assert plan.results == f"out {nasty}"
    assert f"--params=study={nasty}" in step_args.curves_args(plan, "mnist/mnist/mlp")
    assert f"--key=-{nasty}" in step_args.triptych_args(plan, "mnist/mnist/mlp")  # not an option
    assert f"--idx-images=-{nasty}.idx" in step_args.mnist_args(plan, "mnist")
    assert plan.cohort_yaml("demo") == f"out {nasty}/cohorts/demo/cohort.yaml"
    assert load_study(study({"results": "-r"}), SCHEMA).results == "./-r"  # no path reads as an option
    runid = next(iter(plan.runs))
    data = load_yaml(plan.run_yaml(runid))["data"]  # relative to the run.yaml's directory
    assert os.path.normpath(Path(plan.results, runid, data)) == os.path.normpath(plan.data_path(runid))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(), min_size=1, max_size=4))
def test_snakemake_quotes_each_list_element_into_exactly_one_word(values):
    """What `{params.args:q}` does with an argument list: one shell word per element, whatever it holds."""
    from snakemake.utils import format as smk_format

    rendered = smk_format("cmd {args:q}", args=values)
    assert shlex.split(rendered) == ["cmd", *[v for v in values if v != ""]]


def _shell_strings() -> dict[str, str]:
    """Rule -> its shell command template, read from rules/*.smk."""
    out = {}
    for f in sorted((REPO / "rules").glob("*.smk")):
        text = f.read_text()
        for m in re.finditer(r"^(?:rule|checkpoint|use rule \w+ as) (\w+).*?:\n(.*?)(?=^\S|\Z)", text, re.M | re.S):
            body = m.group(2)
            sh = re.search(r"^    shell:\n((?:        .*\n)+)", body, re.M)
            if sh:
                out[m.group(1)] = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', sh.group(1)))
    return out


def test_every_value_in_every_shell_command_is_quoted():
    shells = _shell_strings()
    assert {"train", "preprocess", "group_stats", "figure_spectra", "run_config", "make_demo_cohort"} <= set(shells)
    for rule, cmd in shells.items():
        fields = re.findall(r"(?<!\{)\{([^{}]+)\}(?!\})", cmd)
        assert fields, rule
        unquoted = [f for f in fields if not f.endswith(":q") and f != "threads"]  # threads: an int Snakemake sets
        assert not unquoted, f"rule {rule}: unquoted {unquoted} in {cmd!r}"


def test_plan_is_pure():
    cfg = validate_workflow_config(study(), SCHEMA)
    before = copy.deepcopy(cfg)
    a, b = plan_study(cfg), plan_study(cfg)
    assert cfg == before and a.runs == b.runs and a.final_targets() == b.final_targets()


def test_paper_configs_are_the_papers_setting():
    """config/paper.yaml: one seed, 1000 full-batch epochs, the paper's widths, its t-tests marking
    G/H; paper_plus: 10 seeds and the recommended test; both: MNIST grouped by digit class."""
    paper = load_study(study("paper.yaml"), SCHEMA)
    assert paper.config["seeds"] == [0] and paper.config["datasets"]["mnist"]["groups"] == "class"
    for run in paper.runs.values():
        assert run["training"]["epochs"] == 1000 and run["training"]["batch_size"] is None
        assert run["training"]["seed"] == 0 and not run["recording"]["subjects"]
        assert run["recording"]["stats"] == ["grad", "act", "delta"]
    assert {e.test for e in paper.experiments.values()} == {"paper_step_tests"}
    widths = {tuple(r["model"]["hidden"]) for r in paper.runs.values()}
    assert widths == {(32,), (8,), (64,), (128,), (8, 8, 8)}  # width_scale 1 everywhere
    assert "demo/timecourses/cnn2d" in paper.experiments
    plus = load_study(study("paper.yaml", "paper_plus.yaml"), SCHEMA)
    assert plus.results == "results/paper_plus" and len(plus.config["seeds"]) == 10
    tests = {e: x.test for e, x in plus.experiments.items()}
    assert set(tests.values()) == {"subject_maxt_tests"}  # the recommended test marks every pair
    assert all(len(plus.cells[c].seeds) == 10 for c in plus.diff_cells)


def test_wall_time_limit_caps_requests_and_chains_long_runs():
    """resources.max_runtime: every training job asks for at most the limit; a run that needs more
    is resubmitted (rule retries) from its checkpoint; without checkpoints that is refused."""
    long = {"experiments": {"sinusoid": {"elman": {"resources": {"runtime": 600}}}}}
    plan = load_study(study(long, {"resources": {"max_runtime": 240}, "training": {"checkpoint_every": 10}}), SCHEMA)
    elman = [r for r in plan.runs if r.startswith("sinusoid/")]
    assert {plan.run_resource(r, "runtime") for r in elman} == {240}
    assert {plan.run_attempts(r) for r in elman} == {4}  # ceil(600 / 240) + 1 spare
    assert plan.train_retries == 3
    assert {plan.run_resource(r, "runtime") for r in plan.runs if r not in elman} == {120}  # under the limit
    given = study(long, {"resources": {"max_runtime": 240}, "training": {"checkpoint_every": 10}})
    given["experiments"]["sinusoid"]["elman"]["resources"]["attempts"] = 7
    assert load_study(given, SCHEMA).train_retries == 6
    given["experiments"]["sinusoid"]["elman"]["resources"]["attempts"] = 2
    with pytest.raises(InputError, match=r"resources.runtime 600 min does not fit in 2 job\(s\) of .*240 min"):
        load_study(given, SCHEMA)
    no_ckpt = study(long, {"resources": {"max_runtime": 240}, "training": {"checkpoint_every": 0}})
    with pytest.raises(
        InputError, match=r"sinusoid/sinusoid/elman/.*over resources.max_runtime 240 min and .*checkpoint_every is 0"
    ):
        load_study(no_ckpt, SCHEMA)
    assert load_study(study(), SCHEMA).train_retries == 0  # no limit: no retries


#: a small sample shape per (data kind, family), in the layout the family takes (cnn1d: (C, T))
_SAMPLE_SHAPES = {
    "mnist": (8, 8),
    "sinusoid": (12, 1),
    "volumes": (10,),
    "timecourses": (12, 5),
    "spatialmaps": (6, 6, 6),
}


def _model_output(run: dict, kind: str):
    import torch

    from autospec.models import build_model

    m = run["model"]
    shape = _SAMPLE_SHAPES[kind] if (kind, m["family"]) != ("timecourses", "cnn1d") else (5, 12)
    torch.manual_seed(0)
    model = build_model(
        m["family"],
        m["task"],
        shape,
        10 if kind == "mnist" else 2,
        hidden=m["hidden"],
        activation=m["activation"],
        **m["options"],
    ).double()
    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        return {k: tuple(v.shape) for k, v in model.state_dict().items()}, model(x)


@pytest.mark.parametrize("extra", [(), ("paper.yaml",)], ids=["default", "paper"])
def test_every_panel_whose_settings_differ_from_A_gets_its_own_model(extra):
    """Issue 13, item 1: for every family of the study, a panel whose activation, task or widths
    differ from panel A's is trained as a different run config AND builds a model that computes
    something else (the LSTM once ignored `activation`: panels C and D were copies of A); a panel
    with A's settings (G) shares A's runs."""
    import torch

    plan = load_study(study(*extra), SCHEMA)
    panels = plan.config["panels"]
    setting = {lab: (p["task"], tuple(p["hidden"]), p["activation"]) for lab, p in panels.items()}
    families = set()
    for exp in plan.experiments.values():
        kind, family = exp.name.split("/")[1:]
        families.add(family)
        runs = {lab: plan.runs[f"{cell}/seed{plan.config['seeds'][0]}"] for lab, cell in exp.panels.items()}
        shapes_a, out_a = _model_output(runs["A"], kind)
        for lab, run in runs.items():
            if setting[lab] == setting["A"]:
                assert exp.panels[lab] == exp.panels["A"], (exp.name, lab)
                continue
            assert exp.panels[lab] != exp.panels["A"] and run["model"] != runs["A"]["model"], (exp.name, lab)
            shapes, out = _model_output(run, kind)
            same = shapes == shapes_a and out.shape == out_a.shape and torch.allclose(out, out_a, rtol=1e-9, atol=0)
            assert not same, f"{exp.name}: panel {lab} {setting[lab]} computes what panel A computes"
    assert families == {"mlp", "elman", "lstm", "bert", "cnn1d", "cnn2d", "cnn3d"}


def test_training_resources_given_in_part_keep_the_other_defaults():
    """`resources.train: {runtime: 10}` alone keeps mem_mb's default (it once raised a KeyError
    while Snakemake built the job graph)."""
    plan = load_study(study({"resources": {"train": {"runtime": 10}}}), SCHEMA)
    runid = next(iter(plan.runs))
    assert plan.run_resource(runid, "runtime") == 10 and plan.run_resource(runid, "mem_mb") == 4000
