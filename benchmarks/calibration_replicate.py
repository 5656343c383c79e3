"""One calibration replicate: a fresh synthetic cohort, its prepared data, and per-subject gradients.

``make_cohort_data`` writes a demo cohort (``make_demo_cohort``: real FreeSurfer/GIFT files) with
the setting's group sizes and planted effect, and preprocesses the requested data kinds with the
project's own pipeline. ``train_bundle`` trains one model of the default study full-batch with
Adam (as ``autospec train`` does: same models, losses and optimiser) and, at every recorded epoch,
keeps each subject's own weight gradients G_i (torch.func per-sample gradients of the mean loss,
so Σ_i G_i is the batch gradient and Σ_{i∈g} G_i the recorder's group gradient). Every spectrum
of every test family is computed from these matrices, once per replicate. On the first recorded
step of the first seed the group spectra are checked against ``autospec.SpectralRecorder``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import yaml
from torch.func import functional_call, grad, vmap

from autospec import SpectralRecorder
from autospec.data.cohort import load_cohort_config
from autospec.data.dataset import Dataset
from autospec.data.demo import make_demo_cohort
from autospec.data.phenotype import read_phenotype
from autospec.data.preprocess import preprocess
from autospec.models import build_model
from autospec.stats.group_spectra import group_spectra

ROOT = Path(__file__).resolve().parents[1]
GRID_MM = 12.0  # the default study's spatial-map grid


@dataclass
class ModelSpec:
    data: str
    family: str
    hidden: list[int]
    options: dict[str, Any] = field(default_factory=dict)


def default_models(config: Path = ROOT / "config" / "config.yaml") -> list[ModelSpec]:
    """The default study's cohort models with the widths of its difference panels (G, H)."""
    cfg = yaml.safe_load(config.read_text())
    hidden = cfg["panels"]["G"]["hidden"]
    out = []
    for data in ("volumes", "timecourses", "spatialmaps"):
        for family, s in (cfg["experiments"].get(data) or {}).items():
            s = s or {}
            scale = float(s.get("width_scale", 1.0))
            out.append(
                ModelSpec(data, family, [max(1, round(w * scale)) for w in hidden], dict(s.get("options") or {}))
            )
    return out


def make_cohort_data(
    seed: int, effect: float, n_sz: int, n_hc: int, kinds: list[str]
) -> tuple[dict[str, Dataset], pd.DataFrame]:
    """Generate the cohort in a temporary directory; its prepared data sets and covariates (age, sex).

    The covariates are read from the cohort's own phenotype file (COBRE layout), one row per
    subject id, the way a cohort config's ``covariates:`` block selects them.
    """
    with tempfile.TemporaryDirectory(prefix="calib-") as tmp:
        root = make_demo_cohort(Path(tmp) / "cohort", seed=seed, effect=effect, n_sz=n_sz, n_hc=n_hc, grid_mm=GRID_MM)
        cfg = load_cohort_config(root / "cohort.yaml", "demo")
        pheno = read_phenotype(root / "phenotype.csv", "cobre")
        cov = pheno[["Current Age", "Gender"]].rename(columns={"Current Age": "age", "Gender": "sex"})
        return {k: preprocess(cfg, k)[0] for k in kinds}, cov


def model_input(ds: Dataset, family: str) -> torch.Tensor:
    x = torch.from_numpy(ds.X)
    if family == "cnn1d":  # prepared time courses are (T, C); the 1-D CNN takes (C, T), as in training
        x = x.transpose(1, 2).contiguous()
    return x


def _loss(out: torch.Tensor, x: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    return F.cross_entropy(out, y) if task == "classify" else F.mse_loss(out, x)


@dataclass
class Bundle:
    """Per-subject gradients of one trained model: steps × {key: (n, m, k) float32}."""

    steps: list[int]
    grads: list[dict[str, np.ndarray]]
    final_metric: float


def per_sample_gradients(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, task: str) -> dict[str, np.ndarray]:
    """Each sample's gradient of the batch's mean loss, ≥2-D weights as (n, out, in·∏k) float32."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    n = x.shape[0]

    def loss_one(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, p, (xi.unsqueeze(0),))
        return _loss(out, xi.unsqueeze(0), yi.unsqueeze(0), task) / n

    g = vmap(grad(loss_one), in_dims=(None, 0, 0))(params, x, y)
    return {k: v.reshape(n, v.shape[1], -1).numpy() for k, v in g.items() if v.dim() >= 3}


def train_bundle(
    spec: ModelSpec,
    task: str,
    x: torch.Tensor,
    y: torch.Tensor,
    groups: torch.Tensor,
    *,
    seed: int,
    epochs: int,
    every: int,
    check: bool = False,
) -> Bundle:
    """Train full-batch (Adam, lr 1e-3) and keep per-subject gradients every ``every`` epochs."""
    torch.manual_seed(seed)
    model = build_model(spec.family, task, tuple(x.shape[1:]), 2, hidden=spec.hidden, activation="relu", **spec.options)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps, grads = [], []
    metric = float("nan")
    for epoch in range(epochs):
        if epoch % every == 0:
            g = per_sample_gradients(model, x, y, task)
            if check and not steps:
                check_against_recorder(model, x, y, groups, task, g)
            steps.append(epoch)
            grads.append(g)
        opt.zero_grad(set_to_none=True)
        out = model(x)
        loss = _loss(out, x, y, task)
        loss.backward()
        opt.step()
        with torch.no_grad():
            metric = float((out.argmax(1) == y).float().mean()) if task == "classify" else float(loss)
    return Bundle(steps, grads, metric)


def check_against_recorder(  # noqa: PLR0917
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, groups: torch.Tensor, task: str, g: dict[str, np.ndarray]
) -> None:
    """Group spectra from summed per-subject gradients must equal the recorder's (an oracle check)."""
    rec = SpectralRecorder(model, stats=("grad",))
    model.zero_grad(set_to_none=True)
    with rec.record(groups=groups) as snap:
        _loss(model(x), x, y, task).backward()
    model.zero_grad(set_to_none=True)
    gid = groups.numpy()
    for key in snap.keys:
        if key not in g:
            continue
        for k in np.unique(gid):
            want = snap.singular_values(key, "grad", int(k))
            got = group_spectra(g[key], (gid == k)[None].astype(float))[0][: len(want)]
            keep = want > 1e-4 * want[0]
            err = float(np.max(np.abs(got[keep] - want[keep]) / want[keep]))
            if err > 1e-3:
                raise AssertionError(f"{key} group {k}: per-subject sums differ from the recorder by {err:.2e}")
