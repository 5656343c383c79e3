"""One training run: train a model of the battery on a prepared dataset while recording spectra.

Epoch ``e`` (0-based) is recorder step ``e``: ``record()`` is entered once per epoch, on the
epoch's first batch (the only batch in full-batch training), and the recorder's ``every``
decides whether that call records. See docs/training.md for the config, outputs, resume and
determinism.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..atomic import sha256_file
from ..data.dataset import Dataset, load_dataset, manifest_path
from ..errors import InputError
from ..models import build_model
from ..spectral import SpectralRecorder
from . import checkpoint as ckpt
from . import metadata as md
from .config import RunConfig, config_hash

#: dataset kinds whose samples are (time, channel) sequences
_TIME_FIRST_KINDS = ("timecourses", "sinusoid")


class Diverged(Exception):
    def __init__(self, epoch: int, loss: float):
        super().__init__(f"loss {loss} at epoch {epoch}")
        self.epoch, self.loss = epoch, loss


@dataclass
class RunResult:
    status: str  # "completed" | "diverged"
    out_dir: Path
    run_id: str
    epochs_completed: int
    diverged_epoch: int | None = None
    diverged_loss: float | None = None
    resumed_from: int | None = None


# ---------------------------------------------------------------------------------- data
@dataclass
class TrainingData:
    """The dataset as tensors on the training device, in the layout the model expects.

    cnn1d models take channels first (C, T); prepared time courses are (T, C) (meta kind
    ``timecourses`` / ``sinusoid`` or ``axes[1] == "time"``), so they are transposed here.
    """

    x: torch.Tensor
    y: torch.Tensor
    groups: torch.Tensor | None
    n_classes: int
    transposed: bool

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.x.shape[1:])

    def batch(self, idx: torch.Tensor | None):
        if idx is None:
            return self.x, self.y, self.groups
        i = idx.to(self.x.device)
        return self.x[i], self.y[i], None if self.groups is None else self.groups[i]


def _time_first(ds: Dataset, where: str) -> bool:
    axes = ds.meta.get("axes")
    if isinstance(axes, list) and len(axes) == 3:
        if axes[1] == "time":
            return True
        if axes[2] == "time":
            return False
    if ds.meta.get("kind") in _TIME_FIRST_KINDS:
        return True
    raise InputError(f"{where}: cnn1d needs to know whether samples are (time, channel) or (channel, time); "
                     f"the dataset's meta has kind={ds.meta.get('kind')!r}, axes={axes!r}")  # fmt: skip


def training_data(ds: Dataset, family: str, groups: bool, device: torch.device, where: str) -> TrainingData:
    x = torch.from_numpy(ds.X)
    transposed = False
    if family == "cnn1d":
        if x.dim() != 3:
            raise InputError(f"{where}: cnn1d needs samples of shape (T, C); X has shape {tuple(ds.X.shape)}")
        if _time_first(ds, where):
            x, transposed = x.transpose(1, 2), True
    return TrainingData(
        x=x.contiguous().to(device),
        y=torch.from_numpy(ds.y).to(device),
        groups=torch.from_numpy(ds.groups).to(device) if groups else None,
        n_classes=len(ds.class_names),
        transposed=transposed,
    )


def batch_plan(n: int, batch_size: int | None, order: torch.Tensor | None) -> list[torch.Tensor | None]:
    """Index tensors of an epoch's batches (``[None]``: one full batch, no gather)."""
    if batch_size is None or batch_size >= n:
        return [None] if order is None else [order]
    return list(order.split(batch_size))


# ---------------------------------------------------------------------------------- recording
@contextlib.contextmanager
def recording(main: SpectralRecorder, sub: SpectralRecorder | None, groups, samples) -> Iterator[tuple]:
    """Both recorders around one forward + backward; yields ``(snapshot, subject snapshot)``."""
    with main.record(groups=groups) as snap:
        if sub is None:
            yield snap, None
            return
        # Closing the inner block replays generic-path modules (e.g. LearnedPositions) while the
        # outer recorder's hooks are installed; the recorders share a replay scope, so the outer
        # one ignores those calls (tests/test_training.py::test_two_recorders_match_separate_recording).
        with sub.record(groups=samples) as sub_snap:
            yield snap, sub_snap


def _check_subject_keys(patterns, keys: list[str]) -> None:
    for p in patterns or ():
        if not any(k == p or fnmatchcase(k, p) for k in keys):
            raise InputError(f"run config field recording.subject_keys: {p!r} matches no recordable weight "
                             f"(recordable: {', '.join(keys)})")  # fmt: skip


# ---------------------------------------------------------------------------------- torch setup
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("run config field training.device: 'cuda' requested but no CUDA device is available")
    return torch.device(name)


@contextlib.contextmanager
def torch_settings(threads: int | None, deterministic: bool, device: torch.device, seed: int) -> Iterator[None]:
    """Threads, deterministic algorithms and seeds for the run; torch's global settings are restored."""
    prev = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled())  # fmt: skip
    try:
        if threads:
            torch.set_num_threads(threads)
        if deterministic:
            if device.type == "cuda":
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
                torch.backends.cudnn.benchmark = False
            # on CUDA some kernels have no deterministic version: warn rather than fail there
            torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        yield
    finally:
        torch.set_num_threads(prev[0])
        torch.use_deterministic_algorithms(prev[1], warn_only=prev[2])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------- the run
def train(
    cfg: RunConfig,
    out_dir: os.PathLike | str,
    *,
    progress: bool = True,
    on_epoch: Callable[[int], None] | None = None,
) -> RunResult:
    """Train ``cfg``'s model on its dataset, recording spectra; write the outputs to ``out_dir``.

    Resumes from ``out_dir/checkpoint.pt`` when its config hash matches (else InputError).
    ``on_epoch(epoch)`` is called after each finished epoch (after its checkpoint).
    Returns the status; a diverged run (non-finite loss) writes what it has and returns
    ``status="diverged"``. Raises InputError for bad input.
    """
    t_start, started = time.perf_counter(), _dt.datetime.now(_dt.UTC).isoformat()
    run_dir = Path(out_dir)
    m_cfg, t_cfg, r_cfg = cfg.model, cfg.training, cfg.recording
    ds = load_dataset(cfg.data)
    data_sha = sha256_file(cfg.data)
    device = resolve_device(t_cfg["device"])
    chash = config_hash(cfg, data_sha, device.type)
    run_id = chash[:16]
    run_dir.mkdir(parents=True, exist_ok=True)
    blob = ckpt.load_checkpoint(run_dir, chash)

    with torch_settings(t_cfg["threads"], t_cfg["deterministic"], device, t_cfg["seed"]):
        data = training_data(ds, m_cfg["family"], r_cfg["groups"], device, str(cfg.data))
        if m_cfg["task"] == "classify" and data.n_classes < 2:
            raise InputError(f"{cfg.data}: classify needs >= 2 classes, the dataset has {data.n_classes}")
        model = build_model(m_cfg["family"], m_cfg["task"], data.input_shape, data.n_classes,
                            m_cfg["hidden"], m_cfg["activation"], **m_cfg["options"]).to(device)  # fmt: skip
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=t_cfg["lr"])
        gen = torch.Generator().manual_seed(t_cfg["seed"])
        fixed_order = (
            torch.randperm(data.n, generator=gen) if t_cfg["batch_size"] and t_cfg["shuffle"] == "once" else None
        )
        rec = SpectralRecorder(model, stats=r_cfg["stats"], every=r_cfg["every"], top_k=r_cfg["top_k"])
        sub = None
        if r_cfg["subjects"]:
            _check_subject_keys(r_cfg["subject_keys"], rec.keys)
            sub = SpectralRecorder(model, stats=r_cfg["subject_stats"], include=r_cfg["subject_keys"],
                                   every=r_cfg["every"], top_k=r_cfg["top_k"])  # fmt: skip

        progress_state = ckpt.Progress()
        if blob is not None:
            model.load_state_dict(blob["model"])
            optimizer.load_state_dict(blob["optimizer"])
            progress_state = ckpt.progress_from(blob)
            ckpt.set_rng_states(blob["rng"], gen)
            rec.step = progress_state.rec_steps["main"]
            if sub is not None:
                sub.step = progress_state.rec_steps["subjects"]
            progress_state.resumed_at.append(progress_state.epoch)
        ckpt.drop_unlisted_parts(run_dir, progress_state.parts)
        for name in md.OUTPUTS:  # never leave a previous run's outputs beside this one's
            (run_dir / name).unlink(missing_ok=True)
        for name in md.OUTPUTS + (ckpt.CHECKPOINT,):  # temp files of a killed run
            for tmp in run_dir.glob(f".{name}.*.tmp"):
                tmp.unlink(missing_ok=True)

        meta = {"run_id": run_id, "config_hash": chash, "family": m_cfg["family"], "task": m_cfg["task"],
                "seed": t_cfg["seed"], "dataset_sha256": data_sha}  # fmt: skip
        use_parts = t_cfg["checkpoint_every"] > 0
        sinks = {"spectra": ckpt.SpectraSink(run_dir, "spectra", {**meta, "group": "dataset group id",
                                             "group_names": ds.group_names.tolist()}, use_parts)}  # fmt: skip
        if sub is not None:
            sinks["subject_spectra"] = ckpt.SpectraSink(
                run_dir, "subject_spectra", {**meta, "group": "sample index (subjects.tsv)"}, use_parts
            )
        try:
            for sink in sinks.values():
                sink.replay(progress_state.parts)
            if blob is not None and progress_state.last_recorded is not None:
                idx = progress_state.last_recorded
                xb, yb, gb = data.batch(None if idx.numel() == data.n else idx)

                def step() -> None:
                    with recording(rec, sub, gb, idx.to(device)):
                        _loss(model(xb), xb, yb, m_cfg["task"]).backward()

                ckpt.prime_recorders(step, [r for r in (rec, sub) if r is not None], model, device)
            diverged = _epochs(cfg, run_dir, chash, model, optimizer, gen, fixed_order, data, rec, sub, sinks,
                               progress_state, device, progress, on_epoch)  # fmt: skip
            paths = {k: s.close() for k, s in sinks.items()}
        except BaseException:
            for s in sinks.values():
                s.abort()
            raise

    status = "completed" if diverged is None else "diverged"
    outputs = [paths["spectra"]]
    if sub is not None:
        outputs.append(paths["subject_spectra"])
        md.write_subjects(run_dir / md.SUBJECTS, ds)
        outputs.append(run_dir / md.SUBJECTS)
    md.write_metrics(run_dir / md.METRICS, progress_state.metrics, m_cfg["task"])
    outputs.append(run_dir / md.METRICS)
    if diverged is None:
        md.write_model(run_dir / md.MODEL, model)
        outputs.append(run_dir / md.MODEL)
    data_manifest = manifest_path(cfg.data)
    dataset_info = {
        "path": str(cfg.data), "sha256": data_sha,
        "manifest": str(data_manifest) if data_manifest.exists() else None,
        "n": ds.n, "X_shape": list(ds.X.shape), "model_input_shape": list(data.input_shape),
        "transposed_to_channels_first": data.transposed, "kind": ds.meta.get("kind"),
        "class_names": ds.class_names.tolist(), "group_names": ds.group_names.tolist(),
        "group_sizes": np.bincount(ds.groups, minlength=len(ds.group_names)).tolist(),
    }  # fmt: skip
    model_info = {"family": m_cfg["family"], "task": m_cfg["task"],
                  "n_parameters": sum(p.numel() for p in model.parameters()),
                  "recorded_keys": rec.keys, "subject_keys": sub.keys if sub is not None else None}  # fmt: skip
    div = None if diverged is None else {"epoch": diverged.epoch, "loss": diverged.loss}
    record = md.run_record(
        run_id=run_id, status=status, config=cfg.to_dict(), config_hash=chash, config_source=cfg.source,
        dataset=dataset_info, model=model_info, device=device, threads=t_cfg["threads"] or torch.get_num_threads(),
        progress_rows=progress_state.metrics, resumed_at=progress_state.resumed_at, diverged=div,
        started=started, finished=_dt.datetime.now(_dt.UTC).isoformat(),
        wall_s=time.perf_counter() - t_start, outputs=[p.name for p in outputs] + [md.RUN_JSON, md.MANIFEST],
    )  # fmt: skip
    md.write_json(run_dir / md.RUN_JSON, record)
    outputs.append(run_dir / md.RUN_JSON)
    inputs = [cfg.data] + ([data_manifest] if data_manifest.exists() else []) + ([cfg.source] if cfg.source else [])
    md.write_run_manifest(run_dir, inputs, outputs, cfg.to_dict(), {"run_id": run_id, "status": status})
    ckpt.remove_checkpoint(run_dir)
    return RunResult(status, run_dir, run_id, record["epochs_completed"],
                     None if diverged is None else diverged.epoch, None if diverged is None else diverged.loss,
                     progress_state.resumed_at[0] if progress_state.resumed_at else None)  # fmt: skip


def _loss(out: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor, task: str):
    if task == "classify":
        return F.cross_entropy(out, yb)
    return F.mse_loss(out, xb)


def _epochs(cfg, run_dir, chash, model, optimizer, gen, fixed_order, data, rec, sub, sinks, state, device,
            progress, on_epoch) -> Diverged | None:  # fmt: skip
    t_cfg, task = cfg.training, cfg.model["task"]
    epochs, every_ckpt, bs = t_cfg["epochs"], t_cfg["checkpoint_every"], t_cfg["batch_size"]
    interactive = sys.stderr.isatty()
    bar = tqdm(total=epochs, initial=state.epoch, file=sys.stderr, disable=not progress, unit="epoch",
               desc=f"train {cfg.model['family']}/{task}", mininterval=0.5 if interactive else 30.0,
               dynamic_ncols=interactive, ascii=not interactive)  # fmt: skip
    all_idx = torch.arange(data.n)
    try:
        for epoch in range(state.epoch, epochs):
            _sync(device)
            t0 = time.perf_counter()
            if bs is None or bs >= data.n:
                plan = [None]
            else:
                order = fixed_order if fixed_order is not None else torch.randperm(data.n, generator=gen)
                plan = batch_plan(data.n, bs, order)
            loss_sum, hits, err_sq, ref_sq, seen, recorded = 0.0, 0.0, 0.0, 0.0, 0, False
            snaps = (None, None)
            for b, idx in enumerate(plan):
                xb, yb, gb = data.batch(idx)
                optimizer.zero_grad(set_to_none=True)
                ctx = recording(rec, sub, gb, (all_idx if idx is None else idx).to(device)) if b == 0 else None
                with ctx or contextlib.nullcontext((None, None)) as snaps_b:
                    out = model(xb)
                    loss = _loss(out, xb, yb, task)
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        raise Diverged(epoch, value)
                    loss.backward()
                if b == 0:
                    snaps = snaps_b
                    recorded = bool(snaps[0].recorded)
                    if recorded:
                        state.last_recorded = (all_idx if idx is None else idx).clone()
                optimizer.step()
                with torch.no_grad():
                    n_b = int(xb.shape[0])
                    loss_sum += value * n_b
                    seen += n_b
                    if task == "classify":
                        hits += float((out.argmax(dim=1) == yb).sum())
                    else:
                        err_sq += float(((out - xb) ** 2).sum())
                        ref_sq += float((xb**2).sum())
            if recorded:
                sinks["spectra"].write(ckpt.snapshot_frame(snaps[0]))
                if sub is not None:
                    sinks["subject_spectra"].write(ckpt.snapshot_frame(snaps[1]))
            _sync(device)
            wall = time.perf_counter() - t0
            metric = hits / seen if task == "classify" else math.sqrt(err_sq / ref_sq) if ref_sq > 0 else math.nan
            state.metrics.append({"epoch": epoch, "loss": loss_sum / seen, "metric": metric, "wall_s": wall,
                                  "recorded": recorded})  # fmt: skip
            state.epoch = epoch + 1
            if every_ckpt and state.epoch % every_ckpt == 0 and state.epoch < epochs:
                _checkpoint(run_dir, chash, model, optimizer, gen, rec, sub, sinks, state)
            bar.update(1)
            bar.set_postfix({"loss": f"{loss_sum / seen:.4g}", md.metric_name(task): f"{metric:.4g}"}, refresh=False)
            if on_epoch is not None:
                on_epoch(epoch)
    except Diverged as d:
        _sync(device)
        state.metrics.append({"epoch": d.epoch, "loss": d.loss, "metric": math.nan,
                              "wall_s": time.perf_counter() - t0, "recorded": False})  # fmt: skip
        return d
    finally:
        bar.close()
    return None


def _checkpoint(run_dir, chash, model, optimizer, gen, rec, sub, sinks, state) -> None:
    for sink in sinks.values():
        part = sink.cut(state.epoch)
        if part is not None:
            state.parts.append(part)
    state.rec_steps = {"main": rec.step}
    if sub is not None:
        state.rec_steps["subjects"] = sub.step
    ckpt.save_checkpoint(run_dir, chash, model, optimizer, gen, state)
