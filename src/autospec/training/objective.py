"""Losses and metrics: classify = cross-entropy and accuracy; autoencode = MSE and recon_error."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from .data import Samples


def metric_name(task: str) -> str:
    return "accuracy" if task == "classify" else "recon_error"


def loss(out: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor, task: str) -> torch.Tensor:
    """Mean over samples (cross-entropy) or over all elements (MSE against the input)."""
    if task == "classify":
        return F.cross_entropy(out, yb)
    return F.mse_loss(out, xb)


class Totals:
    """Sample-weighted loss and the metric over an epoch's batches.

    recon_error = ‖x̂ − x‖ / ‖x‖ over the samples seen (1 = no better than predicting zeros).
    """

    def __init__(self, task: str) -> None:
        self.task = task
        self.loss_sum = self.hits = self.err_sq = self.ref_sq = 0.0
        self.seen = 0

    @torch.no_grad()
    def add(self, out: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor, value: float) -> None:
        n = int(xb.shape[0])
        self.loss_sum += value * n
        self.seen += n
        if self.task == "classify":
            self.hits += float((out.argmax(dim=1) == yb).sum())
        else:
            self.err_sq += float(((out - xb) ** 2).sum())
            self.ref_sq += float((xb**2).sum())

    @property
    def loss(self) -> float:
        return self.loss_sum / self.seen

    @property
    def metric(self) -> float:
        if self.task == "classify":
            return self.hits / self.seen
        return math.sqrt(self.err_sq / self.ref_sq) if self.ref_sq > 0 else math.nan


def evaluate(model: nn.Module, samples: Samples, task: str, batch_size: int | None) -> tuple[float, float]:
    """(loss, metric) of ``samples`` in eval mode, without gradients (draws no random numbers)."""
    totals = Totals(task)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            chunks: list[torch.Tensor | None] = [None]
            if batch_size and batch_size < samples.n:
                chunks = list(torch.split(torch.arange(samples.n), batch_size))
            for idx in chunks:
                xb, yb, _, _ = samples.batch(idx)
                out = model(xb)
                totals.add(out, xb, yb, float(loss(out, xb, yb, task)))
    finally:
        model.train(was_training)
    return totals.loss, totals.metric
