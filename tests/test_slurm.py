"""The SLURM profile, and (slow) the tiny study through a real single-node Slurm.

`scripts/slurm_ci.sh` installs and starts slurmctld, slurmd and munge when it can (root and
apt-get) and no Slurm answers yet, runs the tiny study with the SLURM executor, checks the
outputs and stops only the daemons it started. Where Slurm cannot be set up it exits 77 and
the test is skipped with the script's reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
PROFILE = REPO / "profiles/slurm/config.yaml"


def test_slurm_profile_settings():
    prof = yaml.safe_load(PROFILE.read_text())
    assert prof["executor"] == "slurm"
    # the plugin's default status command (sacct) hangs where accounting is off
    assert prof["slurm-status-command"] == "squeue" and prof["slurm-no-account"] is True
    assert {"slurm_partition", "mem_mb", "runtime"} <= set(prof["default-resources"])
    assert "PLACEHOLDER" in PROFILE.read_text()  # site values are marked as such


@pytest.mark.skipif(not SNAKEMAKE.exists(), reason="snakemake not installed")
def test_slurm_profile_is_accepted_by_snakemake(tmp_path):
    """A dry run with the profile: every key is a valid option of Snakemake / the plugin."""
    for name in ("Snakefile", "rules", "config", "report", "envs", "profiles"):
        src = REPO / name
        subprocess.run(["cp", "-r", str(src), str(tmp_path / name)], check=True)
    command = [str(SNAKEMAKE), "-n", "--workflow-profile", "profiles/slurm", "--configfile", "config/tiny.yaml"]
    proc = subprocess.run(command, check=False, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Using workflow specific profile profiles/slurm" in out
    assert "slurm_partition=debug" in out  # default resources reach the jobs


@pytest.mark.slow
def test_tiny_study_on_real_slurm(tmp_path):
    work = tmp_path / "wf"
    command = ["bash", str(REPO / "scripts/slurm_ci.sh"), str(work)]
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(command, check=False, capture_output=True, text=True, timeout=1500, env=env)
    if proc.returncode == 77:
        pytest.skip(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert "PASSED" in proc.stdout
    log = (work / "slurm_run.log").read_text()
    assert "has been submitted with SLURM jobid" in log
    # every training job went through sbatch; run_config stayed local
    assert "rule train:" in log or "rule train_subjects:" in log
    assert len(list((work / "results/tiny").rglob("figures/*.png"))) == 15
