"""What produced an output: package versions, code version, host, device."""

from __future__ import annotations

import importlib.metadata
import platform
import socket
import subprocess
from collections.abc import Iterable
from pathlib import Path

#: distributions whose versions every manifest records
TRACKED_DISTRIBUTIONS = (
    "autospec-neuro",
    "torch",
    "numpy",
    "pandas",
    "pyarrow",
    "scipy",
    "nibabel",
    "nilearn",
    "scikit-learn",
    "snakemake",
)


def package_versions(names: Iterable[str] = TRACKED_DISTRIBUTIONS) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    out["python"] = platform.python_version()
    return out


def code_version(start: Path | None = None) -> dict[str, object]:
    """Git commit and dirty flag of the checkout holding this package (None outside git)."""
    here = Path(start or __file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=normal"],
                cwd=here,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    try:
        pkg = importlib.metadata.version("autospec-neuro")
    except importlib.metadata.PackageNotFoundError:
        pkg = None
    return {"git_commit": commit, "git_dirty": dirty, "package_version": pkg}


def host_info() -> dict[str, str]:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
