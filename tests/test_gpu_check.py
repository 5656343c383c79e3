"""benchmarks/gpu_check.sh in its dry (CPU) mode: the script a CUDA machine runs in one call.

The fast test runs the dry mode's oracle, recorder-benchmark and training-benchmark steps (the
device-independent logic of the script: limits, report, result tables); the slow one adds the tiny
study (a Snakemake run). Neither can tell anything about CUDA itself: that needs a GPU machine.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def run_dry(out: Path, steps: str) -> tuple[subprocess.CompletedProcess[str], str]:
    env = {**os.environ, "GPU_CHECK_STEPS": steps, "PYTHON": sys.executable}
    env.pop("OUT", None)
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--dry", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    report = out / "gpu_check_dry.md"
    assert report.is_file(), proc.stdout + proc.stderr
    return proc, report.read_text()


def step_rows(report: str) -> dict[str, str]:
    return {m[1]: m[2] for m in re.finditer(r"^\| ([^|]+?) \| ([^|]+?) \|", report, re.MULTILINE)}


def test_dry_mode_runs_the_checks_on_cpu_and_writes_one_report(tmp_path):
    proc, report = run_dry(tmp_path, "1 2 3")
    assert proc.returncode == 0, report
    rows = step_rows(report)
    assert rows["oracle tests (AUTOSPEC_TEST_DEVICE=cpu)"] == "passed"
    assert rows["recorder benchmark (cpu)"] == "passed"
    assert rows["training benchmark (cpu)"] == "passed"
    assert rows["tiny study (training.device: cpu)"].startswith("skipped")
    assert "passed" in report.split("## oracle tests", 1)[1]  # pytest's own summary line
    # the benchmarks' own tables, with their targets, are in the one file
    assert "| MLP grad ≤ 1.3× |" in report and "top-k iteration ms" in report
    assert "recorded/unrecorded epoch ≤ 1.5× | volumes-mlp |" in report
    assert [p.name for p in tmp_path.iterdir()] == ["gpu_check_dry.md"]


def test_a_step_past_its_limit_is_reported_and_fails_the_script(tmp_path, monkeypatch):
    monkeypatch.setenv("GPU_CHECK_LIMITS", "1 60 60 60")
    proc, report = run_dry(tmp_path, "1")
    assert proc.returncode == 1
    assert step_rows(report)["oracle tests (AUTOSPEC_TEST_DEVICE=cpu)"] == "**timed out**"
    assert "SOME STEPS FAILED" in proc.stdout


def test_unknown_arguments_are_refused(tmp_path):
    proc = subprocess.run(["bash", str(SCRIPT), "--gpu"], cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "unknown argument: --gpu" in proc.stderr


@pytest.mark.slow
def test_dry_mode_with_the_tiny_study(tmp_path):
    proc, report = run_dry(tmp_path, "1 2 3 4")
    assert proc.returncode == 0, report
    assert step_rows(report)["tiny study (training.device: cpu)"] == "passed"
    assert "Tiny study: 1 training runs wrote spectra" in report
