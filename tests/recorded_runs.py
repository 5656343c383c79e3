"""Recorded training-run directories for the statistics, figure and audit tests.

``make_run`` trains a tiny MLP with the real recorder and writes what ``autospec train`` writes
that group-stats and the figures read (spectra, subject spectra, subjects.tsv, run.json,
manifest).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from autospec import SpectralRecorder, SpectraWriter
from autospec.data.dataset import Dataset, load_dataset, save_dataset
from autospec.manifest import build_manifest, write_manifest
from autospec.models.mlp import build_mlp
from autospec.rundir import RunDir


def make_dataset(path: Path, n=(12, 12), d=10, effect=0.0, seed=0, *, kind="test") -> Path:
    """A raw CSV -> prepared .npz with a manifest: group 1's inputs scaled by (1 + effect).

    The raw CSV sits beside the .npz (``raw_features.csv``) and is the manifest's input.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    groups = np.repeat([0, 1], n)
    X = rng.normal(size=(sum(n), d)).astype(np.float32)
    X[groups == 1] *= 1.0 + effect
    y = (X[:, 0] + 0.5 * rng.normal(size=len(X)) > 0).astype(np.int64)
    raw = path.parent / "raw_features.csv"
    pd.DataFrame(X).assign(group=groups, y=y).to_csv(raw, index=False)
    ds = Dataset(
        X=X,
        y=y,
        groups=groups,
        subject_ids=[f"sub-{i:03d}" for i in range(len(X))],
        class_names=["neg", "pos"],
        group_names=["HC", "SZ"],
        meta={"kind": kind},
    )
    save_dataset(path, ds)
    write_manifest(
        path.with_name(path.name + ".manifest.json"),
        build_manifest("preprocess", inputs=[raw], outputs=[path], params={"effect": effect}),
    )
    return path


def make_run(run_dir: Path, dataset: Path, *, seed=0, epochs=6, hidden=(8,), subjects=True, task="classify") -> Path:
    """Train a tiny MLP full-batch, recording group and (optionally) per-subject spectra.

    ``task="autoencode"``: reconstruct the input (MSE), so the labels never enter the loss.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    ds = load_dataset(dataset)
    torch.manual_seed(seed)
    model = build_mlp(task, (ds.X.shape[1],), 2, tuple(hidden), "relu")

    def loss_fn(out):
        return F.cross_entropy(out, y) if task == "classify" else F.mse_loss(out, x)

    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    x, y, g = torch.from_numpy(ds.X), torch.from_numpy(ds.y), torch.from_numpy(ds.groups)
    rec = SpectralRecorder(model)
    srec = SpectralRecorder(model, stats=("grad",)) if subjects else None
    rows, t0 = [], time.perf_counter()
    rd = RunDir(run_dir)
    outs = [rd.spectra, rd.metrics, rd.run_json]
    sw = SpectraWriter(outs[0], metadata={"seed": seed})
    ssw = SpectraWriter(rd.subject_spectra) if subjects else None
    for epoch in range(epochs):
        opt.zero_grad()
        with rec.record(groups=g) as snap:
            if subjects:
                with srec.record(groups=torch.arange(len(y))) as ssnap:
                    out = model(x)
                    loss = loss_fn(out)
                    loss.backward()
            else:
                out = model(x)
                loss = loss_fn(out)
                loss.backward()
        sw.write(snap)
        if subjects:
            ssw.write(ssnap)
        opt.step()
        metric = (
            {"accuracy": float((out.argmax(1) == y).float().mean())}
            if task == "classify"
            else {"recon_error": float((out.detach() - x).norm() / x.norm())}
        )
        rows.append(
            {
                "epoch": epoch,
                "loss": float(loss.detach()),
                **metric,
                "wall_s": time.perf_counter() - t0,
                "recorded": True,
            }
        )
    sw.close()
    pd.DataFrame(rows).to_csv(outs[1], sep="\t", index=False)
    if subjects:
        ssw.close()
        # as autospec.training writes it: the group column holds the group's name
        pd.DataFrame(
            {
                "index": np.arange(len(y)),
                "subject_id": ds.subject_ids,
                "group": ds.group_names[ds.groups],
                "class": ds.class_names[ds.y],
                "split": "train",
            }
        ).to_csv(rd.subjects, sep="\t", index=False)
        outs += [rd.subject_spectra, rd.subjects]
    # the fields of autospec.training's run.json that group-stats and the figures read
    outs[2].write_text(
        json.dumps(
            {
                "schema": "autospec-run/1",
                "seed": seed,
                "config": {"model": {"family": "mlp", "task": task, "hidden": list(hidden), "activation": "relu"}},
                "dataset": {
                    "path": str(dataset),
                    "kind": ds.meta.get("kind"),
                    "group_names": ds.group_names.tolist(),
                    "group_sizes": np.bincount(ds.groups).tolist(),
                },
                "model": {"family": "mlp", "task": task},
            }
        )
    )
    write_manifest(rd.manifest, build_manifest("train", inputs=[dataset], outputs=outs))
    return run_dir
