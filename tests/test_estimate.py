"""`autospec estimate`: the job graph and its schedules, SLURM sizing under a wall-time limit, the
config overlay the workflow accepts, real calibrations and their cache (no timed assertions: every
check here is about structure, arithmetic or what was measured, never about how fast)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from autospec import cli
from autospec.commands.check_config import merge
from autospec.errors import InputError
from autospec.safe_yaml import load_yaml
from autospec.workflow import load_study, plan_study, validate_workflow_config
from autospec.workflow.calibrate import Cache, TrainCalibration, calibrate_training, train_key
from autospec.workflow.calibrate_stats import StatsShape
from autospec.workflow.estimate import Job, estimate_study, job_graph, list_schedule, size_training
from autospec.workflow.estimate_report import overlay, text_report

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config/schemas/config.schema.yaml"


def jobs(*spec) -> dict[str, Job]:
    """(name, seconds, threads, deps) tuples -> jobs."""
    return {n: Job(n, "r", s, t, list(d)) for n, s, t, d in spec}


# ------------------------------------------------------------------ schedules
def test_list_schedule_makespans():
    three = jobs(("a", 10, 1, ()), ("b", 10, 1, ()), ("c", 10, 1, ()))
    assert list_schedule(three, 1) == 30 and list_schedule(three, 2) == 20 and list_schedule(three, 3) == 10
    chain = jobs(("a", 5, 1, ()), ("b", 7, 1, ("a",)), ("c", 1, 1, ("b",)))
    assert list_schedule(chain, 8) == 13  # a chain never runs in parallel
    # the longest remaining path goes first: d (after a) is started before the short b, c
    crit = jobs(("a", 1, 1, ()), ("b", 3, 1, ()), ("c", 3, 1, ()), ("d", 10, 1, ("a",)))
    assert list_schedule(crit, 2) == 11
    # a two-thread job holds both cores
    wide = jobs(("a", 4, 2, ()), ("b", 4, 1, ()), ("c", 4, 1, ()))
    assert list_schedule(wide, 2) == 8 and list_schedule(wide, 2, one_slot_per_job=True) == 8
    with pytest.raises(InputError, match="must be >= 1"):
        list_schedule(three, 0)


# ------------------------------------------------------------------ plan fixtures
def sinusoid_config(tmp_path: Path, **extra) -> dict:
    cfg = {
        "results": str(tmp_path / "res"),
        "datasets": {"sin": {"kind": "sinusoid", "n_per_class": 8, "length": 16}},
        "experiments": {"sinusoid": {"elman": {"panels": ["A", "H"], "width_scale": 0.25}}},
        "panels": {
            "A": {"task": "autoencode", "hidden": [16]},
            "H": {"task": "classify", "hidden": [16], "difference": True},
        },
        "seeds": [0, 1],
        "training": {"epochs": 200, "device": "cpu", "threads": 1, "checkpoint_every": 0},
        "stats": {"permutations": 99},
    }
    return merge(cfg, extra)


def fake_job(plan, runid: str, seconds: float, epoch_s: float, startup: float = 3.0) -> Job:
    return Job(
        f"train:{runid}",
        "train",
        seconds,
        detail={"runid": runid, "epoch_s": epoch_s, "startup_s": startup, "peak_rss_mb": 500.0, "steps": 200},
        mem_mb=1300,
    )


def test_sizing_fits_or_chains_under_the_limit(tmp_path):
    plan = plan_study(validate_workflow_config(sinusoid_config(tmp_path), SCHEMA))
    runid = next(iter(plan.runs))
    # 200 epochs x 2 s + 3 s = 403 s; x1.3 = 524 s -> 10 min (rounded up to 5 min, at least 10)
    fits = size_training(fake_job(plan, runid, 403.0, 2.0), plan, 60, 1.3)
    assert (fits.runtime, fits.attempts, fits.total) == (10, 1, 10)
    # 200 epochs x 60 s = 3.3 h under a 60-min limit: checkpoint every 6 min (10% of the limit),
    # each job does 60 min - startup - one interval of work (with the margin)
    long = size_training(fake_job(plan, runid, 12003.0, 60.0), plan, 60, 1.3)
    assert long.runtime == 60 and long.checkpoint_every == 6
    useful = 3600 - 3 * 1.3 - 6 * 60 * 1.3
    assert long.attempts == math.ceil(200 * 60 * 1.3 / useful) == 5
    assert long.total <= long.attempts * 60
    # no limit: one job as long as needed
    assert size_training(fake_job(plan, runid, 12003.0, 60.0), plan, None, 1.3).attempts == 1
    with pytest.raises(InputError, match=r"too short for .*startup 900 s"):
        size_training(fake_job(plan, runid, 12003.0, 60.0, startup=900.0), plan, 10, 1.3)


def test_overlay_is_a_config_the_workflow_accepts(tmp_path):
    """The overlay sets per pair what the sizing found; merged over the study it caps every job at
    the limit, and the train rule's retries cover the longest chain."""
    cfg = sinusoid_config(tmp_path)
    plan = plan_study(validate_workflow_config(cfg, SCHEMA))
    from autospec.workflow.estimate import Estimate

    graph = job_graph(plan)
    for name, j in graph.items():
        if j.rule == "train":
            graph[name] = fake_job(plan, j.detail["runid"], 12003.0, 60.0)
            graph[name].name = name
    est = Estimate(graph, 2, 50, 60, 1.3, {}, {})
    est.sizing = {n: size_training(j, plan, 60, 1.3) for n, j in graph.items() if j.rule == "train"}
    ov = overlay(est, plan)
    assert ov["resources"] == {"max_runtime": 60}
    block = ov["experiments"]["sinusoid"]["elman"]
    assert block["resources"]["attempts"] == 5 and block["training"] == {"checkpoint_every": 6}
    merged = load_study(merge(sinusoid_config(tmp_path), yaml.safe_load(yaml.safe_dump(ov))), SCHEMA)
    assert {merged.run_resource(r, "runtime") for r in merged.runs} == {60}
    assert merged.train_retries == 4
    assert {r["training"]["checkpoint_every"] for r in merged.runs.values()} == {6}


def test_stats_shape_counts_every_pair():
    ten = StatsShape(5, list(range(10)), 12, 4, dict.fromkeys(range(10), 30))
    work = ten.permutation_work(steps=100, seeds=3, permutations=999)
    seed_work = [w for w in work if w[1] == 6]
    assert len(seed_work) == 45 and seed_work[0] == (math.comb(6, 3), 6, 1200)  # 20 relabelings: exact
    subj = [w for w in work if w[1] == 60]
    assert len(subj) == 45 and subj[0] == (999, 60, 400)
    assert ten.permutation_work(steps=100, seeds=1, permutations=999) == subj  # one seed: no seed tests
    assert ten.permutation_work(steps=100, seeds=3, permutations=0) == []


# ------------------------------------------------------------------ real calibrations
@pytest.fixture(scope="module")
def sinusoid_study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("est")
    cfg = sinusoid_config(tmp)
    plan = plan_study(validate_workflow_config(cfg, SCHEMA))
    data = Path(plan.data_path("sin/sinusoid"))
    argv = ["make-sinusoid", "--out", str(data), "--n-per-class", "8", "--length", "16"]
    assert cli.main(argv) == 0
    return cfg, plan, tmp


def test_estimate_calibrates_once_and_reads_the_cache(sinusoid_study):
    _, plan, tmp = sinusoid_study
    cache = Cache(tmp / "cache")
    est = estimate_study(plan, cache, cores=2, epochs=2)
    trains = [j for j in est.jobs.values() if j.rule == "train"]
    assert len(trains) == 3 and {j.basis for j in trains} == {"calibrated"}
    # the two seeds of the difference setting share one calibration (a seed does not change the cost)
    h = [j for j in trains if "/classify/" in j.name]
    assert len({est.calibrations[j.detail["runid"]].key for j in h}) == 1
    for j in trains:
        cal = est.calibrations[j.detail["runid"]]
        assert len(cal.epoch_walls) == 3 and cal.epochs == 2 and cal.warmup == 1 and cal.peak_rss_mb > 0
        assert j.seconds == pytest.approx(cal.startup_s + cal.warmup_s[0] + 199 * cal.epoch_s)
        assert cal.epoch_s <= sorted(cal.epoch_walls[1:])[1] + 1e-12  # the median wall x a CPU share <= 1
        assert cal.cpu_share > 0 and len(cal.loadavg_before) == 3
    stats = [j for j in est.jobs.values() if j.rule == "group_stats"]
    assert len(stats) == 1 and stats[0].detail["pairs"] == 1 and stats[0].seconds > 0
    files = sorted(p.name for p in (tmp / "cache").glob("*.json"))
    assert len([f for f in files if f.startswith("train-")]) == 2 and len(files) == 4  # + stats, permutation
    stamps = {p: p.stat().st_mtime_ns for p in (tmp / "cache").glob("*.json")}
    again = estimate_study(plan, Cache(tmp / "cache"), cores=2, epochs=2)
    assert {p: p.stat().st_mtime_ns for p in (tmp / "cache").glob("*.json")} == stamps  # nothing measured again
    assert [j.seconds for j in again.jobs.values()] == [j.seconds for j in est.jobs.values()]
    # a 3-core machine is never slower than a 2-core one; SLURM with 50 slots is the critical path
    assert est.wall_here() >= list_schedule(est.jobs, 3) >= est.wall_slurm()
    report = text_report(est, plan)
    assert "CPU-hours" in report and "sinusoid/sin" not in report and "sin/sinusoid/elman/classify" in report


def test_calibration_key_ignores_seed_epochs_and_checkpoints_only(sinusoid_study):
    _, plan, _ = sinusoid_study
    run = plan.runs[next(iter(plan.runs))]
    base = train_key(run, "sha", 1, 3, {"cpu": "x"})
    other = json.loads(json.dumps(run))
    other["training"].update({"seed": 7, "epochs": 5, "checkpoint_every": 9})
    assert train_key(other, "sha", 1, 3, {"cpu": "x"}) == base
    other["model"]["hidden"] = [5]
    assert train_key(other, "sha", 1, 3, {"cpu": "x"}) != base
    assert train_key(run, "sha2", 1, 3, {"cpu": "x"}) != base  # other data
    assert train_key(run, "sha", 1, 3, {"cpu": "y"}) != base  # another machine


def test_a_damaged_cache_entry_is_measured_again(sinusoid_study):
    _, plan, tmp = sinusoid_study
    cache = Cache(tmp / "cache2")
    runid = next(iter(plan.runs))
    data = Path(plan.data_path(runid))
    first = calibrate_training(plan.runs[runid], data, cache, epochs=1)
    path = cache.path("train", first.key)
    path.write_text("{not json")
    second = calibrate_training(plan.runs[runid], data, cache, epochs=1)
    assert isinstance(second, TrainCalibration) and json.loads(path.read_text())["key"] == first.key


def test_cli_estimate_names_missing_data_and_writes_nothing(tmp_path, capsys):
    wf = tmp_path / "wf"
    (wf / "config" / "schemas").mkdir(parents=True)
    (wf / "config" / "schemas" / "config.schema.yaml").write_text(SCHEMA.read_text())
    (wf / "config" / "config.yaml").write_text(yaml.safe_dump(sinusoid_config(tmp_path)))
    out = tmp_path / "est.json"
    assert cli.main(["estimate", "--workflow", str(wf), "--json", str(out), "--overlay", str(tmp_path / "o.yaml")]) == 2
    err = capsys.readouterr().err
    assert "does not exist yet" in err and "res/sin/sinusoid/data.npz" in err and "snakemake --cores N" in err
    assert not out.exists() and not (tmp_path / "o.yaml").exists()
    assert cli.main(["estimate", "--workflow", str(wf), "--only", "nothing/*"]) == 2
    assert "matches none of the experiments" in capsys.readouterr().err
    assert cli.main(["estimate", "--workflow", str(wf), "--margin", "0.5"]) == 2


def test_cli_estimate_end_to_end(sinusoid_study, tmp_path, capsys):
    cfg, _, tmp = sinusoid_study
    wf = tmp_path / "wf"
    (wf / "config" / "schemas").mkdir(parents=True)
    (wf / "config" / "schemas" / "config.schema.yaml").write_text(SCHEMA.read_text())
    (wf / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    args = ["estimate", "--workflow", str(wf), "--calibration-epochs", "2", "--cache", str(tmp / "cache")]
    args += ["--json", str(tmp_path / "e.json"), "--overlay", str(tmp_path / "o.yaml"), "--max-runtime", "60"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "Wall time on this machine" in out and "Wall time on SLURM" in out
    rec = json.loads((tmp_path / "e.json").read_text())
    assert set(rec["rules"]) >= {"train", "group_stats", "make_sinusoid", "figure_spectra"}
    assert rec["cpu_hours"] == pytest.approx(sum(j["seconds"] * j["threads"] for j in rec["jobs"].values()) / 3600)
    ov = load_yaml(tmp_path / "o.yaml")
    assert ov["resources"] == {"max_runtime": 60} and "elman" in ov["experiments"]["sinusoid"]
    load_study(merge(cfg, ov), SCHEMA)  # the overlay is a valid config
