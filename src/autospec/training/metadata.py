"""The run's small outputs: ``metrics.tsv``, ``subjects.tsv``, ``run.json``, ``manifest.json``.

Wall-clock times and timestamps live here, never in the spectra files, so that the Parquet
files of two runs with the same config are byte-identical.
"""

from __future__ import annotations

import io
import json
import math
import platform
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..atomic import atomic_output, write_text_atomic
from ..data.dataset import Dataset
from ..manifest import build_manifest, write_manifest
from ..versions import code_version, host_info, package_versions

METRICS = "metrics.tsv"
RUN_JSON = "run.json"
MODEL = "model.pt"
MANIFEST = "manifest.json"
SPECTRA = "spectra.parquet"
SUBJECT_SPECTRA = "subject_spectra.parquet"
SUBJECTS = "subjects.tsv"
OUTPUTS = (SPECTRA, SUBJECT_SPECTRA, SUBJECTS, METRICS, MODEL, RUN_JSON, MANIFEST)


def metric_name(task: str) -> str:
    return "accuracy" if task == "classify" else "recon_error"


def cpu_model() -> str:
    """The CPU's marketing name (``platform.processor()`` is often empty on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def write_metrics(path: Path, rows: Sequence[dict[str, Any]], task: str) -> None:
    """``metrics.tsv``: epoch, loss, accuracy | recon_error, wall_s, recorded (True/False)."""
    name = metric_name(task)
    df = pd.DataFrame(
        {
            "epoch": pd.Series([r["epoch"] for r in rows], dtype="int64"),
            "loss": pd.Series([r["loss"] for r in rows], dtype="float64"),
            name: pd.Series([r["metric"] for r in rows], dtype="float64"),
            "wall_s": pd.Series([r["wall_s"] for r in rows], dtype="float64"),
            "recorded": pd.Series([r["recorded"] for r in rows], dtype="bool"),
        }
    )
    with atomic_output(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False, float_format="%.9g", na_rep="nan")


def write_subjects(path: Path, ds: Dataset) -> None:
    """``subjects.tsv``: the group column of ``subject_spectra.parquet`` (sample index) ->
    subject id, group name and class name."""
    df = pd.DataFrame(
        {
            "index": np.arange(ds.n, dtype=np.int64),
            "subject_id": ds.subject_ids,
            "group": ds.group_names[ds.groups],
            "class": ds.class_names[ds.y],
        }
    )
    with atomic_output(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False)


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def timing_summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean epoch wall time with and without recording (epoch 0 included; see docs)."""
    rec = [r["wall_s"] for r in rows if r["recorded"] and math.isfinite(r["loss"])]
    plain = [r["wall_s"] for r in rows if not r["recorded"] and math.isfinite(r["loss"])]
    mr, mp = _mean(rec), _mean(plain)
    return {
        "epochs_timed": len(rows),
        "total_epoch_wall_s": float(sum(r["wall_s"] for r in rows)),
        "mean_epoch_wall_s_recorded": mr,
        "mean_epoch_wall_s_unrecorded": mp,
        "recorded_over_unrecorded": (mr / mp) if mr is not None and mp else None,
        "n_recorded": len(rec),
        "n_unrecorded": len(plain),
    }


def run_record(
    *,
    run_id: str,
    status: str,
    config: dict[str, Any],
    config_hash: str,
    config_source: Path | None,
    dataset: dict[str, Any],
    model: dict[str, Any],
    device: torch.device,
    threads: int,
    progress_rows: Sequence[dict[str, Any]],
    resumed_at: Sequence[int],
    diverged: dict[str, Any] | None,
    started: str,
    finished: str,
    wall_s: float,
    outputs: Sequence[str],
) -> dict[str, Any]:
    """The ``run.json`` mapping."""
    last = progress_rows[-1] if progress_rows else None
    return {
        "schema": "autospec-run/1",
        "run_id": run_id,
        "status": status,
        "epochs_completed": sum(1 for r in progress_rows if math.isfinite(r["loss"])),
        "diverged": diverged,
        "final": None if last is None else {"epoch": last["epoch"], "loss": last["loss"],
                                             metric_name(config["model"]["task"]): last["metric"]},
        "seed": config["training"]["seed"],
        "config": config,
        "config_hash": config_hash,
        "config_file": str(config_source) if config_source else None,
        "dataset": dataset,
        "model": model,
        "device": {"type": device.type, "name": device_name(device)},
        "threads": threads,
        "timing": timing_summary(progress_rows),
        "resumed_at_epochs": list(resumed_at),
        "started": started,
        "finished": finished,
        "wall_s": wall_s,
        "versions": package_versions(),
        "code": code_version(),
        "host": host_info(),
        "outputs": list(outputs),
    }  # fmt: skip


def json_safe(obj: Any) -> Any:
    """Strict JSON: non-finite floats become the strings ``"nan"``, ``"inf"``, ``"-inf"``."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json(path: Path, obj: dict[str, Any]) -> None:
    text = json.dumps(json_safe(obj), indent=2, sort_keys=True, default=str, allow_nan=False)
    write_text_atomic(path, text + "\n")


def write_model(path: Path, model: torch.nn.Module) -> None:
    buf = io.BytesIO()  # saved via a buffer: the archive's inner name is then fixed, not the temp name
    torch.save(model.state_dict(), buf)
    with atomic_output(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def write_run_manifest(run_dir: Path, inputs: Sequence[Path], outputs: Sequence[Path], params: dict[str, Any],
                       extra: dict[str, Any]) -> Path:  # fmt: skip
    path = run_dir / MANIFEST
    write_manifest(path, build_manifest("train", inputs=inputs, outputs=outputs, params=params, extra=extra))
    return path
