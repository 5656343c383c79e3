"""Group subspaces over training: principal angles between two groups' top-k gradient subspaces.

One panel per recorded weight: the k principal angles (degrees, 0 = same directions, 90 =
orthogonal) between the top-k singular subspaces of the two groups' gradients at every recorded
step, read from the spectra file's sibling ``<stem>.subspaces.parquet`` (record with
``SpectralRecorder(subspaces=k)``). Saved as PNG and/or PDF with a provenance sidecar.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..provenance.sidecar import build_sidecar, save_figure
from ..spectral.store import read_principal_angles, read_subspaces, subspaces_path
from .style import fit_text, new_figure, panel_label, paper_style, short_key


def principal_angles_figure(
    spectra: os.PathLike[str] | str,
    g1: int,
    g2: int,
    *,
    out_png: os.PathLike[str] | str | None = None,
    out_pdf: os.PathLike[str] | str | None = None,
    keys: Sequence[str] | None = None,
    k: int | None = None,
    side: str = "right",
    names: dict[int, str] | None = None,
) -> Any:
    """Plot the principal angles between groups ``g1`` and ``g2`` (-1 = whole batch) per weight.

    Returns the matplotlib Figure; writes it when ``out_png``/``out_pdf`` are given. ``names``
    maps group ids to labels for the title.
    """
    keys = list(keys) if keys is not None else list(dict.fromkeys(read_subspaces(spectra)["key"]))
    label = {g1: str(g1), g2: str(g2), **(names or {})}
    with paper_style():
        fig = new_figure(height_in=1.6 * len(keys) + 0.4)
        axes = fig.subplots(len(keys), 1, squeeze=False, sharex=True)[:, 0]
        for i, (ax, key) in enumerate(zip(axes, keys)):
            df = read_principal_angles(spectra, key, g1, g2, k=k, side=side)
            for idx, part in df.groupby("index"):
                ax.plot(part["step"], np.degrees(part["angle"]), label=f"θ{int(idx) + 1}")
            ax.set_ylim(0, 90)
            ax.set_ylabel("angle (°)")
            panel_label(ax, chr(ord("A") + i), f"{short_key(key)}: {label[g1]} vs {label[g2]} ({side} vectors)")
            if len(df):
                ax.legend(loc="upper right", ncol=min(4, int(df["index"].max()) + 1), frameon=False)
        axes[-1].set_xlabel("recorded step")
        fit_text(fig)
        if out_png is not None or out_pdf is not None:
            side_car = build_sidecar(
                "principal_angles",
                [Path(spectra), subspaces_path(spectra)],
                params={"g1": g1, "g2": g2, "k": k, "side": side, "keys": keys},
            )
            save_figure(fig, out_png, out_pdf, side_car)
    return fig
