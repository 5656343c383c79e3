"""Property-based fuzzing (hypothesis) of workflow, run and cohort configs and of every command's
arguments: the outcome is exit 0, or exit 2 with ONE error line and no partial output; never a
traceback, never an internal error, never executed text. Bounded in examples (the whole module
runs in well under a minute on 2 cores; AUTOSPEC_FUZZ_SCALE multiplies them); data-format inputs (phenotype, aseg.stats, GIFT) are fuzzed
with their readers' tests."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest
import yaml
from hostile_cases import ERROR_LINE, dataset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autospec.cli import build_parser, main
from autospec.commands.check_config import merge
from autospec.errors import InputError
from autospec.safe_yaml import load_yaml
from autospec.workflow import load_study

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config/schemas/config.schema.yaml"
#: AUTOSPEC_FUZZ_SCALE=10 runs ten times the examples (a longer hunt than `make test` affords)
SCALE = int(os.environ.get("AUTOSPEC_FUZZ_SCALE", "1"))
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

#: text a shell or a YAML/JSON/argparse reader might act on
HOSTILE_TEXT = [
    "$(touch PWNED)",
    "`touch PWNED`",
    "; touch PWNED",
    "&& touch PWNED",
    "'",
    '"',
    "a b",
    "-x",
    "--help",
    "",
    "é ü 日本",
    "{x}",
    "a:b",
    "a,b",
    "..",
    "/",
    "*",
    "~",
    "${HOME}",
    "\x00",
    "\n",
    "\t",
    "\x1b[31m",
    "null",
    "1e-3",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2, 3, 2**31, 2**32, 2**63, 10**12]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(HOSTILE_TEXT),
    st.text(max_size=12),
)
VALUES = st.recursive(
    SCALARS, lambda v: st.lists(v, max_size=3) | st.dictionaries(st.text(max_size=6), v, max_size=3), max_leaves=6
)


def leaves(doc, path=()):
    """Every (path, value) of a nested config, mappings and lists included."""
    yield path, doc
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in items:
        yield from leaves(v, (*path, k))


def replaced(doc, path, value):
    if not path:
        return value
    doc = yaml.safe_load(yaml.safe_dump(doc))  # a copy
    node = doc
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return doc


def run_cli(*argv) -> tuple[int, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse (--help prints and exits 0)
            rc = int(exc.code or 0)
    return rc, err.getvalue()


def judged(rc: int, err: str, allowed=(0, 2)) -> None:
    assert "Traceback" not in err and "internal error" not in err, err
    assert rc in allowed, (rc, err)
    if rc == 2:
        assert len([ln for ln in err.splitlines() if ERROR_LINE.match(ln)]) == 1, err


def files_under(d: Path) -> list[Path]:
    return sorted(p for p in d.rglob("*") if p.is_file()) if d.exists() else []


# ------------------------------------------------------------------------------ workflow configs
TINY = load_yaml(REPO / "config/config.yaml")
merge(TINY, load_yaml(REPO / "config/tiny.yaml"))
TINY_PATHS = [p for p, _ in leaves(TINY)]


@settings(FUZZ, max_examples=150 * SCALE)
@given(path=st.sampled_from(TINY_PATHS), value=VALUES, extra=st.booleans())
def test_fuzzed_workflow_configs_plan_or_name_a_field(path, value, extra, tmp_path):
    cfg = replaced(TINY, path, value)
    if extra and isinstance(cfg, dict):  # an unknown key at the same place
        parent = cfg
        for k in path[:-1]:
            parent = parent[k]
        if isinstance(parent, dict):
            parent["x-unknown"] = value
    with contextlib.chdir(tmp_path):
        try:
            if not isinstance(cfg, dict):
                raise InputError("workflow config must be a mapping")
            plan = load_study(cfg, SCHEMA)
        except InputError as err:
            msg = str(err)
            assert "\n" not in msg and msg.startswith(("config", "workflow config")), msg
            return
    # planned: every path and argument is clean enough for Snakemake and the shell quoting
    assert "{" not in plan.results and not any(ord(c) < 32 for c in plan.results)
    assert all(t.startswith(plan.results) for t in plan.final_targets())
    for runid, run in plan.runs.items():
        assert plan.run_threads(runid) >= 1 and load_yaml(plan.run_yaml(runid))["model"] == run["model"]
    assert not list(tmp_path.rglob("PWNED"))


# ------------------------------------------------------------------------------ run configs
RUN_VALUES = st.one_of(
    st.sampled_from([0, -1, 3.5, "3", 2**32, 2**40, 1e11, float("nan"), float("inf"), None, [], {}, True]),
    st.sampled_from(HOSTILE_TEXT),
    st.sampled_from([1, 2, [3], [2, 2], "cpu", "relu", "classify", "autoencode", 0.01]),  # valid and small
)
RUN_PATHS = [
    ("data",),
    ("model",),
    ("model", "family"),
    ("model", "hidden"),
    ("model", "hidden", 0),
    ("model", "task"),
    ("model", "activation"),
    ("model", "options"),
    ("training", "epochs"),
    ("training", "lr"),
    ("training", "seed"),
    ("training", "batch_size"),
    ("training", "threads"),
    ("training", "device"),
    ("training", "checkpoint_every"),
    ("recording", "stats"),
    ("recording", "top_k"),
    ("recording", "every"),
    ("recording", "subject_keys"),
    ("recording", "subjects"),
    ("x",),
]


@pytest.fixture(scope="module")
def run_data(tmp_path_factory) -> Path:
    return dataset(tmp_path_factory.mktemp("fuzzdata"))


@settings(FUZZ, max_examples=60 * SCALE)
@given(path=st.sampled_from(RUN_PATHS), value=RUN_VALUES)
def test_fuzzed_run_configs_train_or_refuse_in_one_line(path, value, run_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    base = {
        "data": str(run_data),
        "model": {"family": "mlp", "hidden": [3]},
        "training": {"epochs": 2, "device": "cpu", "checkpoint_every": 0},
    }
    try:
        doc = replaced(base, path, value)
    except (TypeError, KeyError, IndexError):
        doc = {**base, path[0]: value}
    (tmp / "run.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    rc, err = run_cli("train", "--config", tmp / "run.yaml", "--out", tmp / "out", "--no-progress")
    judged(rc, err, allowed=(0, 2, 3))  # 3: diverged (a legal lr can diverge), outputs written
    if rc == 2:
        assert files_under(tmp / "out") == [], "a refused run left outputs"


@settings(FUZZ, max_examples=60 * SCALE)
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_arbitrary_text_as_a_run_config_is_refused_in_one_line(text, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("raw")
    (tmp / "run.yaml").write_text(text, encoding="utf-8", errors="surrogateescape")
    rc, err = run_cli("train", "--config", tmp / "run.yaml", "--out", tmp / "out")
    judged(rc, err, allowed=(2,))
    assert not (tmp / "out").exists()


# ------------------------------------------------------------------------------ cohort configs
@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    from autospec.data.demo import make_demo_cohort

    root = tmp_path_factory.mktemp("fuzzcohort") / "c"
    make_demo_cohort(root, seed=4, small=True, n_sz=3, n_hc=3, grid_mm=12)
    return root


COHORT_VALUES = st.one_of(
    st.sampled_from([0, -1, 2**32, 1e11, float("nan"), None, [], {}, True, "x"]), st.sampled_from(HOSTILE_TEXT)
)


@settings(FUZZ, max_examples=40 * SCALE)
@given(data=st.data())
def test_fuzzed_cohort_configs_preprocess_or_refuse_in_one_line(cohort, data, tmp_path_factory):
    doc = load_yaml(cohort / "cohort.yaml")
    paths = [p for p, _ in leaves(doc) if len(p) >= 2]
    path = data.draw(st.sampled_from(paths))
    cfg = tmp_path_factory.mktemp("cfg") / "cohort.yaml"
    doc = replaced(doc, path, data.draw(COHORT_VALUES))
    # relative paths in the block resolve against the file's directory: keep the real files reachable
    cfg.write_text(yaml.safe_dump(doc, allow_unicode=True))
    for name in ("freesurfer", "gift", "phenotype.csv"):
        if not (cfg.parent / name).exists():
            (cfg.parent / name).symlink_to(cohort / name)
    out = cfg.parent / "out" / "v.npz"
    rc, err = run_cli("preprocess", "--cohort-config", cfg, "--kind", "volumes", "--out", out, "-q")
    judged(rc, err)
    if rc == 2:
        assert files_under(cfg.parent / "out") == []


# ------------------------------------------------------------------------------ CLI arguments
def _options() -> dict[str, list]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return {name: [a for a in p._actions if a.option_strings and a.dest != "help"] for name, p in sub.choices.items()}


OPTIONS = _options()
ARG_VALUES = st.one_of(
    st.sampled_from(["-1", "0", "1", "2", "nan", "inf", "1e999", "4294967296", "99999999999999999999", "x", "-", "--"]),
    st.sampled_from(HOSTILE_TEXT).filter(lambda s: "\x00" not in s),
    st.text(max_size=10).filter(lambda s: "\x00" not in s),
)


@settings(FUZZ, max_examples=200 * SCALE)
@given(data=st.data())
def test_fuzzed_command_lines_never_crash(data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("argv")
    command = data.draw(st.sampled_from(sorted(OPTIONS)))
    argv = [command]
    for action in data.draw(st.lists(st.sampled_from(OPTIONS[command]), max_size=5)):
        argv.append(action.option_strings[-1])
        if action.nargs != 0:
            argv.append(data.draw(st.one_of(ARG_VALUES, st.just(str(tmp / "o.npz")))))
    if command == "make-demo-cohort":  # the one step that could take minutes with valid arguments: keep it small
        argv += [
            a for opt, v in (("--n-sz", "2"), ("--n-hc", "2"), ("--grid-mm", "48")) if opt not in argv for a in (opt, v)
        ]
    with contextlib.chdir(tmp):
        rc, err = run_cli(*argv)
    judged(rc, err, allowed=(0, 1, 2) if command == "audit" else (0, 2))
    if rc != 0:  # a refused command writes nothing at all
        assert files_under(tmp) == [], (argv, err, files_under(tmp))
    assert not list(tmp.rglob("PWNED")) and not Path("PWNED").exists()
