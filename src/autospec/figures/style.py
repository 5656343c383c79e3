"""Shared figure style: paper size, colour-blind-safe colours, labelled panels.

Colours are the Okabe–Ito palette (distinguishable with the common colour-vision deficiencies);
heat maps use ``cividis`` (perceptually uniform and colour-blind safe). Fonts are sized so a
7-inch-wide figure stays readable when printed at that width.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

#: Okabe & Ito (2008) colour-blind-safe palette, black last
OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"]
HEATMAP_CMAP = "cividis"
DIVERGING_CMAP = "RdBu_r"  # brain difference maps (red/blue stays distinguishable for deuteranopes)
BRAIN_CMAP = "viridis"  # sequential, colour-blind safe, and unlike cividis never grey like the template
PAPER_WIDTH_IN = 7.0
DPI = 200

RC = {
    "font.size": 7,
    "axes.titlesize": 7.5,
    "axes.labelsize": 7,
    "xtick.labelsize": 6,
    "ytick.labelsize": 6,
    "legend.fontsize": 6,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.0,
    "xtick.major.width": 0.5,
    "ytick.major.width": 0.5,
    "axes.prop_cycle": matplotlib.cycler(color=OKABE_ITO),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "pdf.fonttype": 42,  # embed TrueType: text stays text in the PDF
    "savefig.dpi": DPI,
}


@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    with plt.rc_context(RC):
        yield


def new_figure(height_in: float, width_in: float = PAPER_WIDTH_IN):
    """A constrained-layout figure of paper width (not registered with pyplot's figure manager)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout="constrained")


def panel_label(ax, label: str, title: str | None = None) -> None:
    """Bold panel letter (A, B, ...) at the top left, optional title beside it."""
    ax.set_title(f"$\\bf{{{label}}}$  {title}" if title else f"$\\bf{{{label}}}$", loc="left")


def short_key(key: str) -> str:
    """``layers.0.weight`` -> ``layers.0`` (row labels stay short)."""
    return key[: -len(".weight")] if key.endswith(".weight") else key
