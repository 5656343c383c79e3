"""The Snakemake workflow: lint, format, dry runs of every config, config-only cohorts, a real
end-to-end run of the tiny study, change detection, and a fresh clone.

Every run happens in a temporary copy of the workflow files (Snakefile, rules, config, report,
envs, profiles); the steps import the installed (editable) package.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = BIN / "snakemake"
WORKFLOW_FILES = ("Snakefile", "rules", "config", "report", "envs", "profiles")
#: the seed paper's data set x model pairs (Table 1), the 2-D CNN on the time courses included
PAIRS = 9

pytestmark = pytest.mark.skipif(not SNAKEMAKE.exists(), reason=f"snakemake not installed beside {sys.executable}")


def copy_workflow(dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst / name)
    return dst


def smk(cwd: Path, *args: str, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [str(SNAKEMAKE), *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a (dry) run: rule -> number of jobs."""
    m = re.search(r"Job stats:\n(.*?)\n\s*\n", output, re.S)
    assert m, f"no job stats in output:\n{output[-3000:]}"
    rows = (re.match(r"^(\w+)\s+(\d+)$", line.strip()) for line in m.group(1).splitlines())
    return {r.group(1): int(r.group(2)) for r in rows if r and r.group(1) != "total"}


def dry_run(cwd: Path, *args: str) -> tuple[dict[str, int], str]:
    proc = smk(cwd, "-n", "--cores", "2", *args)
    out = proc.stdout + proc.stderr
    return job_counts(out), out


def write_yaml(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def wf(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("wf"))


@pytest.fixture(scope="module")
def default_plan(wf) -> tuple[dict[str, int], str]:
    """Job counts and output of a dry run of the default study (shared by several tests)."""
    return dry_run(wf)


# ------------------------------------------------------------------ static checks
def test_lint_clean():
    proc = smk(REPO, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr


def test_snakefmt_clean():
    proc = subprocess.run(
        [str(BIN / "snakefmt"), "--check", "Snakefile", "rules"], check=False, cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ------------------------------------------------------------------ dry runs
def test_default_dry_run_has_every_pair_and_panel(default_plan):
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    seeds = cfg["seeds"]
    counts, out = default_plan
    # per pair: A..F are 6 settings (G, H reuse A's and B's), G and H trained with every seed
    runs = PAIRS * (4 + 2 * len(seeds))
    assert counts["run_config"] == runs
    assert counts["train"] + counts["train_subjects"] == runs
    assert counts["figure_spectra"] == counts["figure_curves"] == PAIRS
    assert counts["group_stats"] == 2 * PAIRS
    assert counts["figure_brain"] == counts["make_demo_cohort"] == 1
    assert counts["preprocess"] == 2 and counts["preprocess_spatialmaps"] == 1
    for path in (
        "results/mnist/mnist/cnn2d",
        "results/sinusoid/sinusoid/elman",
        "results/demo/volumes/mlp",
        "results/demo/timecourses/bert",
        "results/demo/spatialmaps/cnn3d/figures/spectra.png",
    ):
        assert path in out
    assert f"  epochs: {cfg['training']['epochs']}\n" in out and "--threads 1" in out


def test_paper_dry_run(wf):
    counts, out = dry_run(wf, "--configfile", "config/paper.yaml")
    # one seed: A-F, T, W are 8 settings (G, H share A's and B's runs), no per-subject spectra
    assert counts["run_config"] == counts["train"] == PAIRS * 8 and "train_subjects" not in counts
    assert counts["group_stats"] == 2 * PAIRS
    assert "  epochs: 1000\n" in out and not re.search(r"  epochs: (?!1000\n)", out)
    assert "results/paper/demo/spatialmaps/cnn3d/autoencode/h8x8x8-relu/seed0" in out
    assert "results/paper/demo/timecourses/cnn2d/classify/h32-relu/seed0" in out
    assert "--grid-mm 3" in out and "--n-per-class 500" in out and "--groups class" in out
    assert "--test paper_step_tests" in out and "--permutations" in out


def test_paper_plus_dry_run(wf):
    counts, out = dry_run(wf, "--configfile", "config/paper.yaml", "config/paper_plus.yaml")
    # 10 seeds of G and H; the first seed of the 6 cohort pairs' G and H records per-subject spectra
    assert counts["run_config"] == PAIRS * (6 + 2 * 10)
    assert counts["train_subjects"] == 6 * 2 and counts["group_stats"] == 2 * PAIRS
    assert "results/paper_plus/mnist/mnist/mlp/classify/h32-relu/seed9" in out
    assert "--test subject_maxt_tests" in out and "--test paper_step_tests" not in out


def test_cohorts_added_by_config_alone(wf, default_plan, tmp_path):
    """A second generated cohort and a user cohort (its own cohort.yaml) in one extra config
    file add exactly their jobs; the user cohort's raw files become inputs."""
    from autospec.data.demo import make_demo_cohort

    root = tmp_path / "site2"
    make_demo_cohort(root, seed=3, small=True, n_sz=3, n_hc=3, grid_mm=12)
    extra = write_yaml(
        tmp_path / "extra.yaml",
        {
            "cohorts": {
                "demo2": {"generate": {"seed": 1, "small": True}},
                "site2": {"config": str(root / "cohort.yaml"), "name": "demo", "datasets": ["volumes"]},
            }
        },
    )
    counts, out = dry_run(wf, "--configfile", str(extra))
    base, _ = default_plan
    added = {k: counts.get(k, 0) - base.get(k, 0) for k in counts}
    seeds = yaml.safe_load((REPO / "config/config.yaml").read_text())["seeds"]
    per_pair = 4 + 2 * len(seeds)
    # demo2: volumes-mlp, timecourses-lstm/bert/cnn1d/cnn2d, spatialmaps-cnn3d; site2: volumes-mlp
    assert added["make_demo_cohort"] == 1 and added["preprocess"] == 2 + 1 and added["preprocess_spatialmaps"] == 1
    assert added["run_config"] == (6 + 1) * per_pair
    assert added["group_stats"] == 2 * (6 + 1) and added["figure_spectra"] == 6 + 1
    assert added["figure_brain"] == 1
    assert "results/demo2/timecourses/lstm/classify/h16-relu/stats" in out
    assert "make-demo-cohort --out results/cohorts/demo2 --seed 1 --effect 1.0 --small" in out
    assert "results/site2/volumes/mlp/figures/spectra.png" in out
    some = sorted(root.glob("freesurfer/*/stats/aseg.stats"))
    assert len(some) == 6 and all(str(p) in out for p in some)  # every raw file is an input


def test_invalid_config_names_the_field(wf, tmp_path):
    bad = write_yaml(tmp_path / "bad.yaml", {"training": {"epochs": 0}})
    proc = smk(wf, "-n", "--configfile", str(bad), check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "epochs" in text and "minimum" in text


def test_schema_rejects_unknown_fields_and_fills_defaults():
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    schema = str(REPO / "config/schemas/config.schema.yaml")
    with pytest.raises(WorkflowError, match="trainng"):
        validate({"trainng": {"epochs": 3}}, schema)
    with pytest.raises(WorkflowError, match="grid_mm"):
        validate({"cohorts": {"c": {"generate": {"grid_mm": -1}}}}, schema)
    with pytest.raises(WorkflowError):  # a cohort needs exactly one of config / generate
        validate({"cohorts": {"c": {"datasets": ["volumes"]}}}, schema)
    cfg = {"cohorts": {"c": {"config": "x.yaml"}}, "datasets": {"m": {"kind": "mnist"}}}
    validate(cfg, schema)
    assert cfg["training"]["epochs"] == 20 and cfg["seeds"] == [0] and set(cfg["panels"]) == {"A", "B"}
    assert cfg["cohorts"]["c"]["datasets"] == ["volumes", "timecourses", "spatialmaps"]
    assert cfg["datasets"]["m"]["groups"] == "parity" and "length" not in cfg["datasets"]["m"]


def test_schema_fills_defaults(tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    write_yaml(
        wf / "config/config.yaml",
        {"datasets": {"sin": {"kind": "sinusoid"}}, "experiments": {"sinusoid": {"elman": {}}}},
    )
    counts, out = dry_run(wf)
    assert counts["run_config"] == 2 and counts["make_sinusoid"] == 1  # default panels A, B; seeds [0]
    assert "--n-per-class 256" in out and "  epochs: 20\n" in out and "  lr: 0.001\n" in out
    assert "results/sin/sinusoid/elman/classify/h32-relu/seed0" in out


# ------------------------------------------------------------------ hostile configs
#: characters a shell would act on, quotes, spaces and non-ASCII (control characters are refused)
NASTY = "a $(touch PWNED1) `touch PWNED2`; touch PWNED3 && touch PWNED4 'q\" é ü"


def pwned(root: Path) -> list[Path]:
    return sorted(root.rglob("PWNED*"))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A small generated cohort whose cohort.yaml is also copied under a hostile name beside it."""
    from autospec.data.demo import make_demo_cohort

    root = tmp_path_factory.mktemp("site") / "site"
    make_demo_cohort(root, seed=3, small=True, n_sz=3, n_hc=3, grid_mm=12)
    shutil.copy(root / "cohort.yaml", root / f"c {NASTY}.yaml")
    return root


def test_hostile_paths_reach_every_step_as_one_argument(wf, site, tmp_path):
    """A dry run with a hostile results root, cohort path, study name and weight key: every printed
    command splits (as the shell will) into exactly the intended arguments."""
    results = f"res {NASTY}"
    extra = write_yaml(
        tmp_path / "extra.yaml",
        {
            "results": results,
            "study": NASTY,
            "cohorts": {"site2": {"config": str(site / f"c {NASTY}.yaml"), "name": "demo", "datasets": ["volumes"]}},
        },
    )
    proc = smk(wf, "-n", "-p", "--cores", "2", "--configfile", str(extra))
    out = proc.stdout + proc.stderr
    commands = [ln for ln in out.splitlines() if "python -m autospec" in ln]
    assert len(commands) > 100 and not pwned(wf) and not pwned(tmp_path)
    for cmd in commands:
        argv = shlex.split(cmd)
        outs = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--out", "--out-png", "--config")]
        assert outs and all(o.startswith(results + "/") for o in outs), cmd
        assert "PWNED1)" not in argv and "touch" not in argv, cmd  # nothing split out of a value
    pre = next(shlex.split(c) for c in commands if "site2/volumes/data.npz" in c and " preprocess " in c)
    assert pre[pre.index("--cohort-config") + 1] == str(site / f"c {NASTY}.yaml")
    plots = [shlex.split(c) for c in commands if " plot " in c]
    assert all(f"--params=study={NASTY}" in p for p in plots)


def test_issue_repro_a_cohort_path_with_a_command_substitution_executes_nothing(wf, site, tmp_path):
    """The issue's repro, run for real: cohort.yaml copied to a name with $(touch PWNED), a target of
    that cohort built with --configfile config/tiny.yaml extra.yaml: the job runs, nothing executes."""
    extra = write_yaml(
        wf / "extra.yaml",
        {"cohorts": {"site2": {"config": str(site / f"c {NASTY}.yaml"), "name": "demo", "datasets": ["volumes"]}}},
    )
    target = "results/tiny/site2/volumes/data.npz"
    smk(wf, "--cores", "2", "--configfile", "config/tiny.yaml", str(extra), "--", target)
    assert (wf / target).is_file() and (wf / (target + ".manifest.json")).is_file()
    assert not pwned(wf) and not pwned(site.parent) and not pwned(Path.cwd())


def test_templated_and_bomb_config_files_are_refused(wf, tmp_path):
    yte = tmp_path / "yte.yaml"
    yte.write_text("__use_yte__: true\nstudy: harmless\n")
    proc = smk(wf, "-n", "--configfile", str(yte), check=False)
    assert proc.returncode != 0 and f"{yte}: workflow config refused: YTE templates" in proc.stdout + proc.stderr
    bomb = tmp_path / "bomb.yaml"  # nested list anchors: Snakemake merges them; the workflow refuses them
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"] + [
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)
    ]
    bomb.write_text("x:\n" + "".join(f"  {ln}\n" for ln in lines))
    proc = smk(wf, "-n", "--configfile", str(bomb), check=False, timeout=120)
    assert (
        proc.returncode != 0
        and f"{bomb}: workflow config refused: more than 20,000 values" in proc.stdout + proc.stderr
    )


def test_yaml11_lr_string_in_a_config_file_is_a_number(wf, tmp_path):
    extra = tmp_path / "lr.yaml"
    extra.write_text("training: {lr: 1e-3}\n")  # YAML 1.1 (Snakemake's loader) reads "1e-3" as a string
    _, out = dry_run(wf, "--configfile", str(extra))
    assert "  lr: 0.001\n" in out


# ------------------------------------------------------------------ real runs (slow)
TINY = ("--cores", "2", "--configfile", "config/tiny.yaml")
TINY_ROOT = "results/tiny"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    wf = copy_workflow(tmp_path_factory.mktemp("tiny"))
    smk(wf, *TINY, timeout=900)
    return wf


@pytest.mark.slow
def test_tiny_study_end_to_end(tiny):
    import pandas as pd

    root = tiny / TINY_ROOT
    runs = sorted(p.parent for p in root.rglob("seed*/run.yaml"))
    assert len(runs) == 5 * 3  # 5 pairs x (A seed 0, H seeds 0 and 1)
    for run in runs:
        spectra = pd.read_parquet(run / "spectra.parquet")
        assert sorted(spectra["step"].unique()) == [0, 1, 2] and (spectra["value"] >= 0).all()
        assert {-1, 0, 1} <= set(spectra["group"].unique())  # whole batch and both groups
        assert len(pd.read_csv(run / "metrics.tsv", sep="\t")) == 3
    for cell in ("demo/volumes/mlp", "demo/timecourses/cnn1d", "demo/spatialmaps/cnn3d"):
        stats = next((root / cell / "classify").glob("*/stats"))
        assert (stats / "seed_tests.tsv").is_file() and (stats / "subject_tests.tsv").is_file()
        assert len(pd.read_csv(stats / "subject_tests.tsv", sep="\t")) > 0
    figs = sorted(root.rglob("figures/*.png"))
    assert len(figs) == 5 * 2 + 4 + 1  # spectra + curves per pair, 4 triptychs, 1 brain
    for f in figs:
        assert f.stat().st_size > 10_000 and f.with_suffix(".pdf").is_file() and f.with_suffix(".prov.json").is_file()
    audit = subprocess.run(
        [sys.executable, "-m", "autospec", "audit", "-q", f"{TINY_ROOT}/demo/volumes/mlp/figures/spectra.png"],
        check=False,
        cwd=tiny,
        capture_output=True,
        text=True,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert (tiny / TINY_ROOT / "benchmarks/train/demo/volumes/mlp/autoencode/h32-relu/seed0.tsv").is_file()
    # nothing left to do: the recorded inputs, params and code match (no spurious reruns)
    again = smk(tiny, "-n", *TINY)
    assert "Nothing to be done" in again.stdout + again.stderr
    smk(tiny, "--configfile", "config/tiny.yaml", "--report", "report.html")
    html = (tiny / "report.html").read_text(errors="replace")
    assert "Spectra figure of" in html and "spectra.png" in html


@pytest.mark.slow
def test_editing_one_cohort_file_reruns_exactly_its_dependents(tiny):
    root = tiny / TINY_ROOT
    aseg = sorted((root / "cohorts/demo/freesurfer").glob("*/stats/aseg.stats"))[0]
    untouched = {p: p.stat().st_mtime_ns for p in root.rglob("spectra.parquet") if "/volumes/" not in str(p)}
    aseg.write_text(aseg.read_text() + "# edited\n")
    counts, out = dry_run(tiny, *TINY[2:], "--rerun-triggers", "mtime", "input", "params", "code")
    # volumes data set -> its 3 runs (A seed 0, H seeds 0-1) -> H's tests -> its 3 figures
    assert counts == {
        "preprocess": 1,
        "train": 2,
        "train_subjects": 1,
        "group_stats": 1,
        "figure_spectra": 1,
        "figure_curves": 1,
        "figure_triptych": 1,
        "all": 1,
    }
    assert f"Updated input files: {aseg.relative_to(tiny)}" in out
    outputs = re.findall(r"^\s+output: (.*)$", out, re.M)
    assert outputs and all("/demo/volumes/" in line for line in outputs)
    smk(tiny, *TINY)
    assert all(p.stat().st_mtime_ns == t for p, t in untouched.items())  # other data sets untouched


@pytest.mark.slow
def test_fresh_clone_builds_env_then_runs_snakemake(tmp_path):
    """A clone of HEAD (what CI gets): `make study` creates the env, then runs snakemake; the
    committed workflow dry-runs there. Running the study in the clone would need a new .venv
    (a full pip install), so only the plan is checked."""
    if shutil.which("git") is None or shutil.which("make") is None:
        pytest.skip("git or make not available")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    assert (clone / "Snakefile").is_file(), "Snakefile is not committed at HEAD"
    plan = subprocess.run(["make", "-n", "study"], cwd=clone, capture_output=True, text=True, check=True).stdout
    lines = plan.splitlines()
    env_line = next(i for i, s in enumerate(lines) if "scripts/bootstrap_env.sh" in s)
    run_line = next(i for i, s in enumerate(lines) if re.search(r"\.venv/bin/snakemake --cores \d+", s))
    assert env_line < run_line
    assert not (clone / ".venv").exists() and not (clone / "results").exists()
    counts, _ = dry_run(clone, "--configfile", "config/tiny.yaml")
    assert counts["run_config"] == 15


@pytest.mark.slow
def test_a_real_run_with_a_hostile_results_root(tmp_path):
    """Data, training (three runs), group tests and figures under a results root
    full of shell syntax, quotes and non-ASCII: every job runs, nothing executes, audit is clean."""
    wf = copy_workflow(tmp_path / "wf")
    results = f"res {NASTY}"
    off = {"enabled": False}
    extra = write_yaml(
        wf / "hostile.yaml",
        {
            "results": results,
            "study": NASTY,
            "cohorts": {"demo": off},
            "datasets": {"mnist": off, "sinusoid": {"n_per_class": 16, "length": 32}},
            "seeds": [0, 1],
            "experiments": {"sinusoid": {"elman": {"panels": ["A", "H"], "width_scale": 0.25}}},
            "training": {"epochs": 2},
            "stats": {"permutations": 9},
        },
    )
    smk(wf, "--cores", "2", "--configfile", str(extra), timeout=900)
    root = wf / results
    figs = sorted(root.rglob("figures/*.png"))
    assert len(figs) == 3 and len(list(root.rglob("seed*/spectra.parquet"))) == 3
    assert not pwned(wf) and not pwned(tmp_path)
    audit = subprocess.run(
        [sys.executable, "-m", "autospec", "audit", "-q", str(figs[0].relative_to(wf))],
        check=False,
        cwd=wf,
        capture_output=True,
        text=True,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr


def _descendant_pids(root: int) -> list[int]:
    """Every live descendant of process ``root`` (from /proc), children first."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


@pytest.mark.slow
def test_a_run_killed_at_the_wall_time_limit_is_retried_and_resumes(tmp_path):
    """What SLURM does at a job's time limit, done by hand: the training process is killed once it
    has checkpointed; with resources.max_runtime the train rule has retries, so Snakemake starts the
    job again, it resumes from checkpoint.pt, and its spectra are byte-identical to a run that was
    never killed."""
    import signal
    import time

    wf = copy_workflow(tmp_path / "wf")
    off = {"enabled": False}
    base = {
        "cohorts": {"demo": off},
        "datasets": {"mnist": off, "sinusoid": {"n_per_class": 16, "length": 32}},
        "seeds": [0],
        "experiments": {"sinusoid": {"elman": {"panels": ["A"], "width_scale": 0.5}}},
        "training": {"epochs": 400, "checkpoint_every": 20},
    }
    limited = {**base, "results": "limited", "resources": {"max_runtime": 5, "train": {"runtime": 10}}}
    smk(wf, "-n", "--cores", "1", "--configfile", str(write_yaml(wf / "limited.yaml", limited)))
    run = wf / "limited/sinusoid/sinusoid/elman/autoencode/h16-relu/seed0"
    target = str(run.relative_to(wf) / "spectra.parquet")
    proc = subprocess.Popen(
        [str(SNAKEMAKE), target, "--cores", "1", "--configfile", "limited.yaml"],  # targets before --configfile
        cwd=wf,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    killed = None
    deadline = time.monotonic() + 600
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        if (run / "checkpoint.pt").is_file():
            for pid in _descendant_pids(proc.pid):
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if b"-m" in cmd and b"autospec" in cmd and b"train" in cmd:  # python, not its shell
                    os.kill(pid, signal.SIGKILL)  # as SLURM's KillWait ends a job past its time limit
                    killed = pid
        time.sleep(0.02)
    out, _ = proc.communicate(timeout=600)
    assert killed is not None, "the training ended before it could be killed; make it longer\n" + out[-3000:]
    assert proc.returncode == 0, out[-4000:]
    assert "Trying to restart job" in out
    log = (wf / "limited/logs/train/sinusoid/sinusoid/elman/autoencode/h16-relu/seed0.log").read_text()
    assert "resumed at epoch" in log
    whole = {**base, "results": "whole"}
    smk(
        wf,
        "whole/sinusoid/sinusoid/elman/autoencode/h16-relu/seed0/spectra.parquet",
        "--cores",
        "1",
        "--configfile",
        str(write_yaml(wf / "whole.yaml", whole)),
    )
    again = wf / "whole/sinusoid/sinusoid/elman/autoencode/h16-relu/seed0/spectra.parquet"
    assert (run / "spectra.parquet").read_bytes() == again.read_bytes()
