"""A training run in progress: :class:`Session`.

A session holds what a run is made of (model, optimizer, batch-order generator, recorders,
spectra sinks, progress, device, the prepared data) and does one thing at a time: open (set up
or resume, :meth:`Session.open`), run one epoch (:meth:`Session.run_epoch`), checkpoint, close the
spectra files. Writing the run's other outputs is :mod:`.outputs`' job; the epoch loop is
:func:`autospec.training.train`.

Epoch ``e`` (0-based) is recorder step ``e``: ``record()`` is entered once per epoch, on the
epoch's first batch (the only batch in full-batch training), and the recorders' schedule
(``recording.schedule``, else every ``recording.every``-th epoch) decides whether that call records.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..atomic import sha256_file
from ..data.dataset import Dataset, load_dataset
from ..errors import InputError
from ..models import build_model
from ..rundir import RunDir
from ..spectral import Snapshot
from . import checkpoint as ckpt
from . import objective
from .config import RunConfig, RunSettings, config_hash
from .data import TrainingData, training_data
from .memory import check_memory
from .objective import evaluate
from .out_dir import check_out_path, clear_previous_outputs, prepare_run_dir
from .outputs import covariates
from .recorders import Recorders
from .sampling import MatchedSampler
from .sinks import SpectraSink
from .torch_env import resolve_device, sync, torch_settings


class Diverged(Exception):
    """A non-finite loss at ``epoch``: the run stops before that step's backward."""

    def __init__(self, epoch: int, loss: float):
        super().__init__(f"loss {loss} at epoch {epoch}")
        self.epoch, self.loss = epoch, loss


def _matched_sampler(s: RunSettings, data: TrainingData, ds: Dataset) -> MatchedSampler | None:
    """The drawer of equal-sized group subsets for ``recording.group_sampling: matched``, else None."""
    if s.recording.group_sampling != "matched":
        return None
    assert data.train.groups is not None  # the config refuses matched sampling without groups
    present = np.unique(data.train.groups.cpu().numpy()).tolist()
    return MatchedSampler(present, len(ds.group_names), ds.n, s.recording.sampling_seed)


@dataclass
class Session:
    """See the module docstring; make one with :meth:`open`."""

    cfg: RunConfig
    run: RunDir
    dataset: Dataset
    dataset_sha256: str
    device: torch.device
    config_hash: str
    data: TrainingData
    model: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    fixed_order: torch.Tensor | None
    recorders: Recorders
    sampler: MatchedSampler | None
    progress: ckpt.Progress
    sinks: dict[str, SpectraSink]

    @property
    def settings(self) -> RunSettings:
        return self.cfg.settings

    @property
    def run_id(self) -> str:
        return self.config_hash[:16]

    # ------------------------------------------------------------------ setup / resume
    @classmethod
    @contextlib.contextmanager
    def open(cls, cfg: RunConfig, out_dir: os.PathLike[str] | str) -> Iterator[Session]:
        """Set up the run in ``out_dir`` (resuming from its checkpoint when the config hash
        matches), with the run's torch settings in force until the block ends. On an exception
        the spectra files' temporaries are removed."""
        s, run, where = cfg.settings, RunDir(out_dir), str(cfg.data)
        check_out_path(run)  # before reading a possibly large dataset
        ds = load_dataset(cfg.data)
        covariates(ds)  # malformed covariates fail now, not after training
        sha = sha256_file(cfg.data)
        device = resolve_device(s.training.device)
        chash = config_hash(cfg, sha, device.type)
        with torch_settings(s.training.threads, s.training.deterministic, device, s.training.seed):
            data = training_data(ds, s, device, where)
            if s.model.task == "classify" and data.n_classes < 2:
                raise InputError(f"{cfg.data}: classify needs >= 2 classes, the dataset has {data.n_classes}")
            check_memory(
                s,
                input_shape=data.input_shape,
                n_classes=data.n_classes,
                n_train=data.train.n,
                n_data_elements=ds.X.size,
                device=device,
                where=where,
            )
            prepare_run_dir(run)
            blob = ckpt.load_checkpoint(run, chash)
            session = cls._build(cfg, run, ds=ds, sha=sha, device=device, chash=chash, data=data, blob=blob)
            try:
                if blob is not None:
                    session._prime()
                yield session
            except BaseException:
                for sink in session.sinks.values():
                    sink.abort()
                raise

    @classmethod
    def _build(
        cls,
        cfg: RunConfig,
        run: RunDir,
        *,
        ds: Dataset,
        sha: str,
        device: torch.device,
        chash: str,
        data: TrainingData,
        blob: dict[str, Any] | None,
    ) -> Session:
        s = cfg.settings
        m, t = s.model, s.training
        model = build_model(
            m.family, m.task, data.input_shape, data.n_classes, hidden=m.hidden, activation=m.activation, **m.options
        )
        model = model.to(device)
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=t.lr)
        generator = torch.Generator().manual_seed(t.seed)
        n = data.train.n
        fixed_order = torch.randperm(n, generator=generator) if t.batch_size and t.shuffle == "once" else None
        recorders = Recorders(model, s.recording, t.epochs)
        sampler = _matched_sampler(s, data, ds)
        progress = ckpt.Progress()
        if blob is not None:
            progress = cls._restore(
                blob, run, model=model, optimizer=optimizer, generator=generator, recorders=recorders
            )
        ckpt.drop_unlisted_parts(run, progress.parts)
        clear_previous_outputs(run)
        session = cls(
            cfg=cfg,
            run=run,
            dataset=ds,
            dataset_sha256=sha,
            device=device,
            config_hash=chash,
            data=data,
            model=model,
            optimizer=optimizer,
            generator=generator,
            fixed_order=fixed_order,
            recorders=recorders,
            sampler=sampler,
            progress=progress,
            sinks={},
        )
        session.sinks = session._open_sinks()
        try:
            for sink in session.sinks.values():
                sink.replay(progress.parts)
        except BaseException:
            for sink in session.sinks.values():
                sink.abort()
            raise
        return session

    @staticmethod
    def _restore(
        blob: dict[str, Any],
        run: RunDir,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
        recorders: Recorders,
    ) -> ckpt.Progress:
        where = str(run.checkpoint)
        progress = ckpt.progress_from(blob, where)
        try:
            model.load_state_dict(blob["model"])
            optimizer.load_state_dict(blob["optimizer"])
            ckpt.set_rng_states(blob["rng"], generator)
            recorders.restore(progress.rec_steps)
        except (RuntimeError, ValueError, KeyError, TypeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputError(f"{where}: does not fit this run ({first}); delete it to start afresh") from None
        progress.resumed_at.append(progress.epoch)
        return progress

    def _open_sinks(self) -> dict[str, SpectraSink]:
        s, ds = self.settings, self.dataset
        meta = {
            "run_id": self.run_id,
            "config_hash": self.config_hash,
            "family": s.model.family,
            "task": s.model.task,
            "seed": s.training.seed,
            "dataset_sha256": self.dataset_sha256,
            "split": s.split.kind,
            "recorded_subjects": "training subjects only" if s.split.held_out else "all",
        }
        group_meta = {
            "group": "dataset group id",
            "group_names": ds.group_names.tolist(),
            "group_sampling": s.recording.group_sampling,
        }
        if self.sampler is not None:
            group_meta["sampling_seed"] = s.recording.sampling_seed
        parts = s.training.checkpoint_every > 0
        hidden = None if self.sampler is None else self.sampler.hidden_group
        sinks = {"spectra": SpectraSink(self.run, "spectra", {**meta, **group_meta}, parts, hidden)}
        if self.recorders.sub is not None:
            sub_meta = {**meta, "group": "sample index (subjects.tsv)"}
            sinks["subject_spectra"] = SpectraSink(self.run, "subject_spectra", sub_meta, parts)
        return sinks

    def _prime(self) -> None:
        """After a resume: rebuild the recorders' input caches on the last recorded batch."""
        idx = self.progress.last_recorded
        if idx is None:
            return
        xb, yb, _, rows = self.data.train.batch(None if idx.numel() == self.data.train.n else idx)
        groups = None if self.progress.last_groups is None else self.progress.last_groups.to(self.device)
        task = self.settings.model.task

        def step() -> None:
            with self.recorders.record(groups, rows):
                objective.loss(self.model(xb), xb, yb, task).backward()  # type: ignore[no-untyped-call]

        self.recorders.prime(step, self.model, self.device)

    # ------------------------------------------------------------------ one epoch
    def batch_plan(self) -> list[torch.Tensor | None]:
        """Positions of the epoch's batches in the training samples (``[None]``: one full batch)."""
        bs, n = self.settings.training.batch_size, self.data.train.n
        if bs is None or bs >= n:
            return [None]
        order = self.fixed_order if self.fixed_order is not None else torch.randperm(n, generator=self.generator)
        return list(torch.split(order, bs))

    def _recorded_groups(
        self, groups: torch.Tensor | None, rows: torch.Tensor
    ) -> tuple[torch.Tensor | None, dict[str, Any] | None]:
        """The group ids to record the batch with (matched sampling draws its subsets here)."""
        if self.sampler is None or groups is None or not self.recorders.records_next():
            return groups, None
        step = self.recorders.main.step
        recorded, drawn = self.sampler.draw(step, groups, rows)
        return recorded, {"step": step, "rows": drawn}

    def run_epoch(self) -> Diverged | None:
        """Train one epoch (held-out evaluation first); append its metrics row."""
        epoch, task = self.progress.epoch, self.settings.model.task
        held = self.evaluate_held_out()
        sync(self.device)
        t0 = time.perf_counter()
        snaps: tuple[Snapshot, Snapshot | None] | tuple[None, None] = (None, None)  # filled at b == 0
        totals, recorded, draw = objective.Totals(task), False, None
        try:
            for b, idx in enumerate(self.batch_plan()):
                xb, yb, gb, rows = self.data.train.batch(idx)
                self.optimizer.zero_grad(set_to_none=True)
                if b == 0:
                    gb, draw = self._recorded_groups(gb, rows)
                    with self.recorders.record(gb, rows) as snaps:
                        out, value = self._forward_backward(xb, yb, epoch)
                    recorded = bool(snaps[0].recorded)
                    if recorded:
                        self.progress.last_recorded = torch.arange(self.data.train.n) if idx is None else idx.clone()
                        self.progress.last_groups = None if gb is None else gb.cpu().clone()
                else:
                    out, value = self._forward_backward(xb, yb, epoch)
                self.optimizer.step()
                totals.add(out, xb, yb, value)
        except Diverged as d:
            sync(self.device)
            row = {
                "epoch": d.epoch,
                "loss": d.loss,
                "metric": math.nan,
                "wall_s": time.perf_counter() - t0,
                "recorded": False,
            }
            self.progress.metrics.append({**row, **held})
            return d
        if recorded:  # written once their spectra are computed (a worker thread works on them)
            self.sinks["spectra"].put(snaps[0])
            if "subject_spectra" in self.sinks:
                self.sinks["subject_spectra"].put(snaps[1])
            if draw is not None:
                self.progress.draws.append(draw)
        for sink in self.sinks.values():
            sink.flush(wait=False)
        sync(self.device)
        row = {
            "epoch": epoch,
            "loss": totals.loss,
            "metric": totals.metric,
            "wall_s": time.perf_counter() - t0,
            "recorded": recorded,
        }
        self.progress.metrics.append({**row, **held})
        self.progress.epoch = epoch + 1
        return None

    def _forward_backward(self, xb: torch.Tensor, yb: torch.Tensor, epoch: int) -> tuple[torch.Tensor, float]:
        out = self.model(xb)
        loss = objective.loss(out, xb, yb, self.settings.model.task)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise Diverged(epoch, value)
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
        return out, value

    def evaluate_held_out(self) -> dict[str, float]:
        """``{test_loss, test_metric}`` of the held-out subjects at the epoch's starting weights
        ({} without a split); not part of the epoch's wall time."""
        if self.data.test is None:
            return {}
        sync(self.device)
        loss, metric = evaluate(self.model, self.data.test, self.settings.model.task, self.settings.training.batch_size)
        return {"test_loss": loss, "test_metric": metric}

    # ------------------------------------------------------------------ checkpoint, close
    def checkpoint_due(self) -> bool:
        every, epochs = self.settings.training.checkpoint_every, self.settings.training.epochs
        return bool(every) and self.progress.epoch % every == 0 and self.progress.epoch < epochs

    def save_checkpoint(self) -> None:
        """Cut the spectra parts, then commit ``checkpoint.pt`` (the commit point)."""
        for sink in self.sinks.values():
            part = sink.cut(self.progress.epoch)
            if part is not None:
                self.progress.parts.append(part)
        self.progress.rec_steps = self.recorders.steps()
        ckpt.save_checkpoint(
            self.run,
            self.config_hash,
            model=self.model,
            optimizer=self.optimizer,
            generator=self.generator,
            progress=self.progress,
        )

    def close_spectra(self) -> dict[str, Any]:
        """Close the spectra files (rename them into place); their paths by sink name."""
        return {name: sink.close() for name, sink in self.sinks.items()}
