"""Shared figure style: paper size, colour-blind-safe colours, labelled panels, text that fits.

Colours are the Okabe–Ito palette (distinguishable with the common colour-vision deficiencies);
heat maps use ``cividis`` (perceptually uniform and colour-blind safe). Fonts are sized so a
7-inch-wide figure stays readable when printed at that width.

Layout: figures use matplotlib's constrained layout, which moves axes to make room for their
titles and labels but never shortens a text; a title wider than its panel squeezes the panel (or
collapses the layout) and runs over its neighbour. :func:`fit_text`, called by every figure
before it is saved, therefore wraps each title, axis label and figure-level label to the space
its panel has (measured text widths, not character counts), breaking long weight names at their
dots and underscores, and gives every epoch / recorded-step axis integer ticks.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.textpath import text_to_path
from matplotlib.ticker import MaxNLocator

#: Okabe & Ito (2008) colour-blind-safe palette, black last
OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"]
HEATMAP_CMAP = "cividis"
DIVERGING_CMAP = "RdBu_r"  # brain difference maps (red/blue stays distinguishable for deuteranopes)
BRAIN_CMAP = "viridis"  # sequential, colour-blind safe, and unlike cividis never grey like the template
PAPER_WIDTH_IN = 7.0
DPI = 200

RC: dict[str, Any] = {
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
    "axes.prop_cycle": cycler(color=OKABE_ITO),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "pdf.fonttype": 42,  # embed TrueType: text stays text in the PDF
    "savefig.dpi": DPI,
}


@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    with plt.rc_context(RC):  # type: ignore[arg-type]  # matplotlib types rc keys as a Literal union
        yield


def new_figure(height_in: float, width_in: float = PAPER_WIDTH_IN) -> Figure:
    """A constrained-layout figure of paper width (not registered with pyplot's figure manager)."""
    return Figure(figsize=(width_in, height_in), layout="constrained")


def constrained_layout(fig: Figure) -> ConstrainedLayoutEngine:
    """The constrained-layout engine of a :func:`new_figure` figure (to tune its paddings).

    matplotlib types ``get_layout_engine()`` as the base class (or None); a figure of
    :func:`new_figure` always has this engine, which the check makes explicit.
    """
    engine = fig.get_layout_engine()
    if not isinstance(engine, ConstrainedLayoutEngine):
        raise TypeError(f"figure has layout engine {engine!r}, not matplotlib's constrained layout")
    return engine


def panel_label(ax: Axes, label: str, title: str | None = None, pad: float | None = None) -> None:
    """Bold panel letter (A, B, ...) at the top left, optional title beside it; ``pad``: points
    between the title and the axes (default: the style's)."""
    ax.set_title(f"$\\bf{{{label}}}$  {title}" if title else f"$\\bf{{{label}}}$", loc="left", pad=pad)


def short_key(key: str) -> str:
    """``layers.0.weight`` -> ``layers.0`` (row labels stay short)."""
    return key[: -len(".weight")] if key.endswith(".weight") else key


# --------------------------------------------------------------------------- text that fits
#: room a panel's decorations take beside it (inches): tick labels and a y label of up to four
#: lines on the left; a colorbar with its tick labels and label on the right
_LEFT_DECOR_IN = 0.7
_COLORBAR_IN = 0.5
#: a y label spanning more lines than this is cut at the front ("…"): the axes stay wide enough
_MAX_YLABEL_LINES = 4
#: axis labels of integer-valued axes (their ticks must be integers)
_INTEGER_AXES = ("epoch", "recorded step")
_BREAK_AFTER = re.compile(r"(?<=[._,/-])")


@lru_cache(maxsize=4096)
def text_width_pt(text: str, size: float) -> float:
    """Width in points of one line of ``text`` at font size ``size`` (mathtext when ``$`` pairs)."""
    math = text.count("$") >= 2 and text.count("$") % 2 == 0
    width, _, _ = text_to_path.get_text_width_height_descent(text, FontProperties(size=size), ismath=math)
    return float(width)


def _tokens(line: str, width_pt: float, size: float) -> list[tuple[str, str]]:
    """(token, separator before the next token): words, and long words split after . _ , / -"""
    out: list[tuple[str, str]] = []
    for word in line.split():
        if "$" in word or text_width_pt(word, size) <= width_pt:
            out.append((word, " "))
            continue
        parts = [p for p in _BREAK_AFTER.split(word) if p]
        out += [(p, "") for p in parts[:-1]] + [(parts[-1], " ")]
    return out


def wrap_to_width(text: str, width_pt: float, size: float, max_lines: int | None = None) -> str:
    """``text`` with line breaks so that no line is wider than ``width_pt`` where words allow it;
    existing line breaks are kept. With ``max_lines``, leading lines beyond it are dropped and the
    first kept line starts with "…" (the end of a weight name identifies it)."""
    lines: list[str] = []
    for hard in text.split("\n"):
        current, sep = "", ""
        for token, after in _tokens(hard, width_pt, size):
            trial = current + sep + token if current else token
            if current and text_width_pt(trial, size) > width_pt:
                lines.append(current)
                trial = token
            current, sep = trial, after
        lines.append(current)
    if max_lines is not None and len(lines) > max_lines:
        lines = ["…" + lines[len(lines) - max_lines].lstrip(), *lines[len(lines) - max_lines + 1 :]]
    return "\n".join(lines)


def _cell_inches(fig: Any, ax: Any) -> tuple[float, float] | None:
    """(width of the top-level grid column(s) the axes sit in, height of the axes) in inches,
    before the layout runs; None for axes outside a grid (colorbars, insets)."""
    spec = ax.get_subplotspec()
    if spec is None:
        return None
    top = spec.get_topmost_subplotspec()
    _, ncols = top.get_gridspec().get_geometry()
    fw, fh = fig.get_size_inches()
    width = fw * (top.colspan.stop - top.colspan.start) / ncols
    return width, fh * spec.get_position(fig).height


def fit_text(fig: Any) -> None:
    """Wrap every axes title, y label, legend entry and horizontal figure-level text to the room
    it has, and give epoch and recorded-step axes integer ticks (see the module docstring). The
    figure grows by the lines wrapping adds to its titles and figure-level texts, so that the
    panels keep their height."""
    fw, fh = fig.get_size_inches()
    colorbars = any(ax.get_label() == "<colorbar>" for ax in fig.axes)
    added: dict[Any, float] = {}  # top-level grid row -> inches its wrapped titles added
    for ax in fig.axes:
        cell = _cell_inches(fig, ax)
        room = 72 * max(0.5, (cell[0] if cell else fw) - _LEFT_DECOR_IN - (_COLORBAR_IN if colorbars else 0.05))
        _integer_ticks(ax, room, 72 * (cell[1] if cell else 1.0))
        if cell is None:
            continue
        size = _font_pt(plt.rcParams["axes.titlesize"])
        for loc in ("left", "center", "right"):
            title = ax.get_title(loc=loc)
            if title:
                wrapped = wrap_to_width(title, room, size)
                ax.set_title(wrapped, loc=loc)
                row = (id(ax.get_subplotspec().get_topmost_subplotspec().get_gridspec()), _top_row(ax))
                grown = (wrapped.count("\n") - title.count("\n")) * 1.25 * size / 72
                added[row] = max(added.get(row, 0.0), grown)
        legend = ax.get_legend()
        for text in legend.get_texts() if legend is not None else ():
            text.set_text(wrap_to_width(text.get_text(), 0.7 * room, text.get_fontsize()))
    for text in fig.texts:  # suptitle, supxlabel (a caption) and any other figure-level text
        if text.get_text() and text.get_rotation() == 0:
            before = text.get_text()
            # 8 % spare: rendered advances at screen dpi (hinting) run a few % wider than the
            # outline widths wrap_to_width measures, most for long lines of small text
            text.set_text(wrap_to_width(before, 0.92 * (fw - 0.2) * 72, text.get_fontsize()))
            added[id(text)] = (text.get_text().count("\n") - before.count("\n")) * 1.25 * text.get_fontsize() / 72
    fig.set_size_inches(fw, fh + sum(added.values()))
    for ax in fig.axes:  # y labels last: they fit the height the axes have in the grown figure
        cell = _cell_inches(fig, ax)
        label = ax.yaxis.label
        if cell is not None and label.get_text():
            room = 72 * max(0.4, cell[1])
            label.set_text(wrap_to_width(label.get_text(), room, label.get_fontsize(), _MAX_YLABEL_LINES))


def _integer_ticks(ax: Any, width_pt: float, height_pt: float) -> None:
    """Integer ticks on epoch / recorded-step axes, as many as their widest label leaves room for."""
    for axis, lims, room in ((ax.xaxis, ax.get_xlim(), width_pt), (ax.yaxis, ax.get_ylim(), height_pt)):
        if not axis.get_label_text().strip().endswith(_INTEGER_AXES):
            continue
        size = _font_pt(plt.rcParams["xtick.labelsize"])
        widest = max(text_width_pt(str(round(v)), size) for v in lims) if axis is ax.xaxis else 1.6 * size
        axis.set_major_locator(MaxNLocator(nbins=max(1, min(5, int(room / (2.0 * widest)))), integer=True))


def _top_row(ax: Any) -> int:
    return int(ax.get_subplotspec().get_topmost_subplotspec().rowspan.start)


def _font_pt(size: Any) -> float:
    """A font size in points from a number or a relative name (``"large"``)."""
    return float(FontProperties(size=size).get_size_in_points())
