"""The dataset as a session trains on it: held-out split, standardisation fitted on the training
subjects, the layout each model family expects, tensors on the training device.

Layouts are a registry (:func:`layout`): a family that needs the sample's last two axes swapped
says so; every other family takes the samples as stored.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data.dataset import STANDARDIZE_FEATURES, Dataset
from ..data.kinds import TIME_FIRST_KINDS
from ..errors import InputError
from .config import RunSettings
from .split import held_out

Layout = Callable[[Dataset, str], bool]  # -> swap the sample's last two axes?
LAYOUTS: dict[str, Layout] = {}


def layout(family: str) -> Callable[[Layout], Layout]:
    """Register the layout rule of a model family."""

    def deco(fn: Layout) -> Layout:
        LAYOUTS[family] = fn
        return fn

    return deco


def time_first(ds: Dataset) -> bool | None:
    """True for (time, channel) samples, False for (channel, time), None when the meta does not say."""
    axes = ds.meta.get("axes")
    if isinstance(axes, list) and len(axes) == 3:
        if axes[1] == "time":
            return True
        if axes[2] == "time":
            return False
    if ds.meta.get("kind") in TIME_FIRST_KINDS:
        return True
    return None


@layout("cnn1d")
def channels_first(ds: Dataset, where: str) -> bool:
    """cnn1d convolves over time with the channels as input channels: (C, T)."""
    if ds.X.ndim != 3:
        raise InputError(f"{where}: cnn1d needs samples of shape (T, C); X has shape {tuple(ds.X.shape)}")
    first = time_first(ds)
    if first is None:
        raise InputError(
            f"{where}: cnn1d needs to know whether samples are (time, channel) or (channel, time); "
            f"the dataset's meta has kind={ds.meta.get('kind')!r}, axes={ds.meta.get('axes')!r}"
        )
    return first


@layout("cnn2d")
def time_rows(ds: Dataset, where: str) -> bool:
    """cnn2d takes a sequence as a one-channel T × C image (time down the rows)."""
    return ds.X.ndim == 3 and time_first(ds) is False


@dataclass
class Samples:
    """One part of the dataset on the training device; ``rows`` are the samples' dataset rows."""

    x: torch.Tensor
    y: torch.Tensor
    groups: torch.Tensor | None
    rows: torch.Tensor

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def batch(self, idx: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """``(x, y, groups, rows)`` of the samples at positions ``idx`` (None: all, no copy)."""
        if idx is None:
            return self.x, self.y, self.groups, self.rows
        i = idx.to(self.x.device)
        return self.x[i], self.y[i], None if self.groups is None else self.groups[i], self.rows[i]


@dataclass
class TrainingData:
    """Training samples, held-out samples (None without a split) and what was done to them."""

    train: Samples
    test: Samples | None
    n_classes: int
    transposed: bool
    test_mask: np.ndarray
    standardization: dict[str, Any] | None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.train.x.shape[1:])


def standardize_features(X: np.ndarray, fit: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Each feature (element of a sample) minus its mean, over its sd, both over the ``fit`` rows.

    Population sd (ddof 0), in float64; a feature constant over the fitted rows is only centred
    (scale 1, as scikit-learn's StandardScaler), with a warning.
    """
    flat = X.reshape(X.shape[0], -1).astype(np.float64)
    mean = flat[fit].mean(axis=0)
    sd = flat[fit].std(axis=0)
    constant = sd == 0
    if constant.any():
        warnings.warn(
            f"standardisation: {int(constant.sum())} feature(s) are constant over the "
            "training subjects; they are centred, not scaled",
            stacklevel=2,
        )
    sd[constant] = 1.0
    out = ((flat - mean) / sd).astype(np.float32).reshape(X.shape)
    info = {
        "method": STANDARDIZE_FEATURES,
        "fitted_on": "training subjects",
        "n_fitted": int(fit.sum()),
        "n_features": int(flat.shape[1]),
        "constant_features": int(constant.sum()),
    }
    return out, info


def _samples(x: torch.Tensor, ds: Dataset, rows: np.ndarray, groups: bool, device: torch.device) -> Samples:
    r = torch.from_numpy(rows)
    return Samples(
        x=(x if len(rows) == x.shape[0] else x[r]).contiguous().to(device),
        y=torch.from_numpy(ds.y[rows]).to(device),
        groups=torch.from_numpy(ds.groups[rows]).to(device) if groups else None,
        rows=r.to(device),
    )


def training_data(ds: Dataset, settings: RunSettings, device: torch.device, where: str) -> TrainingData:
    """Split, standardise (when the dataset asks for it) and lay out ``ds`` for ``settings``' model."""
    test = held_out(ds.groups, ds.y, settings.split, ds.group_names)
    X, info = ds.X, None
    if ds.meta.get("standardize") == STANDARDIZE_FEATURES:
        X, info = standardize_features(ds.X, ~test)
    family = settings.model.family
    transposed = LAYOUTS[family](ds, where) if family in LAYOUTS else False
    x = torch.from_numpy(X)
    if transposed:
        x = x.transpose(1, 2)
    groups = settings.recording.groups
    train_rows = np.flatnonzero(~test)
    return TrainingData(
        train=_samples(x, ds, train_rows, groups, device),
        test=_samples(x, ds, np.flatnonzero(test), False, device) if test.any() else None,
        n_classes=len(ds.class_names),
        transposed=transposed,
        test_mask=test,
        standardization=info,
    )
