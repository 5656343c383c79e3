"""Spectra along the weight-sharing dimension over training (paper §2.1).

One panel per weight recorded with ``SpectralRecorder(sharing=True)`` (read from the spectra
file's sibling ``<stem>.sharing.parquet``): a heat map of a spectrum summary of each share's
gradient G_s — per time step of a recurrent cell, per token of a token-wise Linear, per output
position of a convolution — against the recorded step. Recorded steps may be unevenly spaced
(log-spaced schedules): the step axis is drawn at the steps' true values. Saved as PNG and/or
PDF with a provenance sidecar.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..provenance.sidecar import build_sidecar, save_figure
from ..spectral.store_sharing import read_sharing, read_sharing_layout, sharing_path
from .style import HEATMAP_CMAP, fit_text, new_figure, panel_label, paper_style, short_key

SUMMARIES = {"sigma1": "σ₁ of G_s", "nuclear": "Σσ of G_s (nuclear norm)"}


def _share_axis(layout: dict[str, Any]) -> tuple[str, str]:
    """(column to plot along, axis label) from a weight's sharing layout."""
    calls, positions = int(layout.get("calls", 1)), int(layout.get("positions", 1))
    if positions == 1:
        return "call", "time step (call of the weight)"
    if calls > 1:
        return "share", "share (call × position, call-major)"
    shape = [int(v) for v in layout.get("position_shape", [positions])]
    if layout.get("kind") == "convolution":
        dims = " × ".join(map(str, shape))
        return "position", f"output position (of {dims}, row-major)" if len(shape) > 1 else "output position"
    return "position", "token / time point"


def _grid(rows: pd.DataFrame, along: str, summary: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if along == "share":
        positions = int(rows["position"].max()) + 1
        rows = rows.assign(share=rows["call"] * positions + rows["position"])
    agg = "max" if summary == "sigma1" else "sum"
    values = rows.groupby(["step", along])["value"].agg(agg).reset_index()
    z = values.pivot_table(index="step", columns=along, values="value", aggfunc="first", dropna=False)
    return z.columns.to_numpy(), z.index.to_numpy(), z.to_numpy(dtype=float)


def sharing_figure(
    spectra: os.PathLike[str] | str,
    *,
    out_png: os.PathLike[str] | str | None = None,
    out_pdf: os.PathLike[str] | str | None = None,
    keys: Sequence[str] | None = None,
    group: int = -1,
    summary: str = "sigma1",
    group_name: str | None = None,
) -> Any:
    """Plot the sharing-dimension spectra of the spectra file ``spectra`` (or its sharing file).

    ``group``: -1 (whole batch) or a group id; ``summary``: ``sigma1`` (largest singular value of
    each share's gradient) or ``nuclear`` (their sum). Returns the matplotlib Figure; writes it
    when ``out_png``/``out_pdf`` are given.
    """
    from matplotlib.colors import LogNorm

    if summary not in SUMMARIES:
        raise ValueError(f"summary must be one of {tuple(SUMMARIES)}, got {summary!r}")
    df = read_sharing(spectra)
    layouts = read_sharing_layout(spectra)
    df = df[df["group"] == group]
    keys = list(keys) if keys is not None else list(dict.fromkeys(df["key"]))
    if not keys or df.empty:
        raise ValueError(f"no sharing-dimension spectra for group {group} in {spectra}")
    who = group_name or ("whole batch" if group == -1 else f"group {group}")
    with paper_style():
        fig = new_figure(height_in=1.7 * len(keys) + 0.5)
        axes = fig.subplots(len(keys), 1, squeeze=False)[:, 0]
        for i, (ax, key) in enumerate(zip(axes, keys)):
            rows = df[df["key"] == key]
            if rows.empty:
                raise ValueError(f"no sharing-dimension spectra of {key!r} for group {group}")
            along, label = _share_axis(layouts.get(key, {}))
            x, steps, z = _grid(rows, along, summary)
            positive = z[np.isfinite(z) & (z > 0)]
            norm = (
                LogNorm(vmin=positive.min(), vmax=max(positive.max(), positive.min() * 10)) if positive.size else None
            )
            mesh = ax.pcolormesh(x, steps, np.where(z > 0, z, np.nan), shading="nearest", cmap=HEATMAP_CMAP, norm=norm)
            ax.set_facecolor("0.93")  # zero gradients (e.g. the first step of a recurrence from h = 0)
            if len(steps) <= 12:  # few, possibly uneven, recorded steps: tick each one
                ax.set_yticks(steps)
            ax.set_xlabel(label)
            ax.set_ylabel("recorded step")
            panel_label(
                ax, chr(ord("A") + i), f"{short_key(key)}: {SUMMARIES[summary]} per {label.split(' (')[0]}, {who}"
            )
            fig.colorbar(mesh, ax=ax, label=SUMMARIES[summary], aspect=20, pad=0.02, fraction=0.05)
        fit_text(fig)
        if out_png is not None or out_pdf is not None:
            path = Path(spectra)
            source = path if path.name.endswith(".sharing.parquet") else sharing_path(path)
            side = build_sidecar("sharing", [source], params={"keys": keys, "group": group, "summary": summary})
            save_figure(fig, out_png, out_pdf, side)
    return fig
