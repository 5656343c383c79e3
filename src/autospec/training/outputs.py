"""The run's outputs besides the spectra: ``metrics.tsv``, ``subjects.tsv``, ``model.pt``,
``run.json`` and ``manifest.json`` (names from :class:`autospec.rundir.RunDir`).

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
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from ..atomic import atomic_output, write_text_atomic
from ..data.dataset import Dataset, manifest_path
from ..errors import InputError
from ..manifest import build_manifest, write_manifest
from ..rundir import RunDir
from ..versions import code_version, host_info, package_versions
from .objective import metric_name

if TYPE_CHECKING:  # pragma: no cover
    from .session import Diverged, Session


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


# ---------------------------------------------------------------------------------- tables
def write_metrics(path: Path, rows: Sequence[dict[str, Any]], task: str) -> None:
    """``metrics.tsv``: epoch, loss, accuracy | recon_error, wall_s, recorded (True/False), and with
    held-out subjects test_loss, test_accuracy | test_recon_error."""
    name = metric_name(task)
    cols = {
        "epoch": pd.Series([r["epoch"] for r in rows], dtype="int64"),
        "loss": pd.Series([r["loss"] for r in rows], dtype="float64"),
        name: pd.Series([r["metric"] for r in rows], dtype="float64"),
        "wall_s": pd.Series([r["wall_s"] for r in rows], dtype="float64"),
        "recorded": pd.Series([r["recorded"] for r in rows], dtype="bool"),
    }
    if rows and "test_loss" in rows[0]:
        cols["test_loss"] = pd.Series([r["test_loss"] for r in rows], dtype="float64")
        cols[f"test_{name}"] = pd.Series([r["test_metric"] for r in rows], dtype="float64")
    with atomic_output(path) as tmp:
        pd.DataFrame(cols).to_csv(tmp, sep="\t", index=False, float_format="%.9g", na_rep="nan")


#: the columns subjects.tsv always has (a covariate may not take one of these names)
SUBJECT_COLUMNS = ("index", "subject_id", "group", "class", "split")


def covariates(ds: Dataset) -> dict[str, np.ndarray]:
    """The dataset's covariates (``Dataset.covariates``: name -> one value per subject), checked."""
    found = getattr(ds, "covariates", None) or {}
    for name, values in found.items():
        if name in SUBJECT_COLUMNS:
            raise InputError(f"dataset covariate {name!r}: clashes with the subjects.tsv column of that name")
        if len(values) != ds.n:
            raise InputError(f"dataset covariate {name!r}: {len(values)} values for {ds.n} subjects")
    return dict(found)


def write_subjects(path: Path, ds: Dataset, test_mask: np.ndarray) -> None:
    """``subjects.tsv``: the group column of ``subject_spectra.parquet`` (dataset row) -> subject id,
    group name, class name, split (train / test) and the dataset's covariates, one column each."""
    df = pd.DataFrame(
        {
            "index": np.arange(ds.n, dtype=np.int64),
            "subject_id": ds.subject_ids,
            "group": ds.group_names[ds.groups],
            "class": ds.class_names[ds.y],
            "split": np.where(test_mask, "test", "train"),
        }
    )
    for name, values in covariates(ds).items():
        df[name] = np.asarray(values)
    with atomic_output(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False)


def write_model(path: Path, model: torch.nn.Module) -> None:
    buf = io.BytesIO()  # saved via a buffer: the archive's inner name is then fixed, not the temp name
    torch.save(model.state_dict(), buf)
    with atomic_output(path) as tmp:
        tmp.write_bytes(buf.getvalue())


# ---------------------------------------------------------------------------------- run.json
def timing_summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean epoch wall time with and without recording (epoch 0 included; see docs)."""
    rec = [r["wall_s"] for r in rows if r["recorded"] and math.isfinite(r["loss"])]
    plain = [r["wall_s"] for r in rows if not r["recorded"] and math.isfinite(r["loss"])]
    mr = statistics.fmean(rec) if rec else None
    mp = statistics.fmean(plain) if plain else None
    return {
        "epochs_timed": len(rows),
        "total_epoch_wall_s": float(sum(r["wall_s"] for r in rows)),
        "mean_epoch_wall_s_recorded": mr,
        "mean_epoch_wall_s_unrecorded": mp,
        "recorded_over_unrecorded": (mr / mp) if mr is not None and mp else None,
        "n_recorded": len(rec),
        "n_unrecorded": len(plain),
    }


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


def split_record(session: Session) -> dict[str, Any]:
    sp, ds, mask = session.settings.split, session.dataset, session.data.test_mask
    out: dict[str, Any] = {
        "kind": sp.kind,
        "n_train": int((~mask).sum()),
        "n_test": int(mask.sum()),
        "held_out_subjects": ds.subject_ids[mask].tolist(),
    }
    if sp.held_out:
        out.update({"seed": sp.seed, "stratified_by": "group x class"})
        if sp.kind == "holdout":
            out["fraction"] = sp.fraction
        else:
            out.update({"kfold": sp.k, "fold": sp.fold})
    return out


def sampling_record(session: Session) -> dict[str, Any]:
    rec = session.settings.recording
    if session.sampler is None:
        return {"mode": rec.group_sampling}
    names = session.dataset.group_names
    draws = [
        {
            "step": int(d["step"]),
            "size": int(d["rows"].shape[1]),
            "rows": {str(names[g]): d["rows"][k].tolist() for k, g in enumerate(session.sampler.group_ids)},
        }
        for d in session.progress.draws
    ]
    return {
        "mode": "matched",
        "sampling_seed": rec.sampling_seed,
        "hidden_group": session.sampler.hidden_group,
        "rule": "at step s, dataset row r has priority default_rng([sampling_seed, s]).permutation(n_rows)[r]; "
        "each group keeps its m lowest-priority samples of the recorded batch, m = the smallest group's count",
        "draws": draws,
    }


def dataset_record(session: Session) -> dict[str, Any]:
    ds, data, path = session.dataset, session.data, session.cfg.data
    man = manifest_path(path)
    return {
        "path": str(path),
        "sha256": session.dataset_sha256,
        "manifest": str(man) if man.exists() else None,
        "n": ds.n,
        "X_shape": list(ds.X.shape),
        "model_input_shape": list(data.input_shape),
        "transposed_to_channels_first": data.transposed and session.settings.model.family == "cnn1d",
        "transposed": data.transposed,
        "kind": ds.meta.get("kind"),
        "class_names": ds.class_names.tolist(),
        "group_names": ds.group_names.tolist(),
        "group_sizes": np.bincount(ds.groups, minlength=len(ds.group_names)).tolist(),
        "standardization": data.standardization,
        "covariates": sorted(covariates(ds)),
    }


def run_record(
    session: Session, status: str, diverged: Diverged | None, clock: dict[str, Any], outputs: Sequence[str]
) -> dict[str, Any]:
    """The ``run.json`` mapping."""
    s, rows, cfg = session.settings, session.progress.metrics, session.cfg
    last = rows[-1] if rows else None
    final = None
    if last is not None:
        final = {"epoch": last["epoch"], "loss": last["loss"], metric_name(s.model.task): last["metric"]}
        if "test_loss" in last:
            final.update({"test_loss": last["test_loss"], f"test_{metric_name(s.model.task)}": last["test_metric"]})
    rec = session.recorders
    train_groups = session.dataset.groups[~session.data.test_mask]
    return {
        "schema": "autospec-run/1",
        "run_id": session.run_id,
        "status": status,
        "epochs_completed": sum(1 for r in rows if math.isfinite(r["loss"])),
        "diverged": None if diverged is None else {"epoch": diverged.epoch, "loss": diverged.loss},
        "final": final,
        "seed": s.training.seed,
        "config": cfg.to_dict(),
        "config_hash": session.config_hash,
        "config_file": str(cfg.source) if cfg.source else None,
        "dataset": dataset_record(session),
        "split": split_record(session),
        "recorded_subjects": "training subjects" if s.split.held_out else "all subjects",
        "group_sizes": np.bincount(train_groups, minlength=len(session.dataset.group_names)).tolist(),
        "group_sampling": sampling_record(session),
        "model": {
            "family": s.model.family,
            "task": s.model.task,
            "n_parameters": sum(p.numel() for p in session.model.parameters()),
            "recorded_keys": rec.main.keys,
            "subject_keys": rec.sub.keys if rec.sub is not None else None,
        },
        "device": {"type": session.device.type, "name": device_name(session.device)},
        "threads": s.training.threads or torch.get_num_threads(),
        "timing": timing_summary(rows),
        "resumed_at_epochs": list(session.progress.resumed_at),
        **clock,
        "versions": package_versions(),
        "code": code_version(),
        "host": host_info(),
        "outputs": list(outputs),
    }


# ---------------------------------------------------------------------------------- all of them
def write_outputs(
    session: Session, spectra: dict[str, Path], diverged: Diverged | None, clock: dict[str, Any]
) -> dict[str, Any]:
    """Write every output after the spectra files; returns the run.json record.

    A diverged run gets no ``model.pt``. Call :func:`remove_outputs` when this raises.
    """
    run, cfg, task = session.run, session.cfg, session.settings.model.task
    outputs = [spectra["spectra"]]
    if "subject_spectra" in spectra:
        outputs.append(spectra["subject_spectra"])
        write_subjects(run.subjects, session.dataset, session.data.test_mask)
        outputs.append(run.subjects)
    write_metrics(run.metrics, session.progress.metrics, task)
    outputs.append(run.metrics)
    if diverged is None:
        write_model(run.model, session.model)
        outputs.append(run.model)
    status = "completed" if diverged is None else "diverged"
    names = [p.name for p in outputs] + [run.run_json.name, run.manifest.name]
    record = run_record(session, status, diverged, clock, names)
    write_json(run.run_json, record)
    outputs.append(run.run_json)
    data_manifest = manifest_path(cfg.data)
    inputs = [cfg.data] + ([data_manifest] if data_manifest.exists() else []) + ([cfg.source] if cfg.source else [])
    write_manifest(
        run.manifest,
        build_manifest(
            "train",
            inputs=inputs,
            outputs=outputs,
            params=cfg.to_dict(),
            extra={"run_id": session.run_id, "status": status},
        ),
    )
    return record


def remove_outputs(run: RunDir) -> None:
    """Delete every output (and output temp file) in ``run``: a failed run leaves none."""
    for path in run.outputs:
        path.unlink(missing_ok=True)
        for tmp in run.path.glob(f".{path.name}.*.tmp"):
            tmp.unlink(missing_ok=True)
