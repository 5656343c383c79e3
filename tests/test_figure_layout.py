"""Figure layout (issue 13, item 7): every figure kind AutoSpec draws, rendered with long titles,
labels, weight names and group names, keeps all of its text on the canvas, no two texts overlap,
epoch axes have integer ticks and no text is too small to read.

The checks use matplotlib's own text extents: every Text drawn while the figure is rendered by
the Agg renderer records its ``get_window_extent(renderer)`` (texts that are not drawn, such as
the labels of ticks outside the view, are not checked).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from itertools import combinations
from pathlib import Path
from typing import Any

import matplotlib.text
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from recorded_runs import make_dataset, make_run
from torch import nn

from autospec import SpectralRecorder, SpectraWriter
from autospec.cli import main

#: a weight name as long as real ones get (e.g. a transformer's attention projections)
LONG_KEY = "transformer_encoder.layers.0.self_attention_block.in_projection"
LONG_GROUPS = {0: "healthy controls (long group name)", 1: "schizophrenia spectrum (long group name)"}
#: fonts below this size (points) are unreadable at the paper's 7-inch print width
MIN_FONT_PT = 5.0
TOL_PX = 0.5


# --------------------------------------------------------------------------------- the checks
def drawn_texts(fig) -> list[tuple[matplotlib.text.Text, Any]]:
    """(text, window extent) of every non-empty Text drawn when ``fig`` is rendered by Agg."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    seen: list[tuple[matplotlib.text.Text, Any]] = []
    original = matplotlib.text.Text.draw

    def recording_draw(self, rend):
        original(self, rend)
        if self.get_visible() and self.get_text().strip():
            seen.append((self, self.get_window_extent(rend)))

    matplotlib.text.Text.draw = recording_draw
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*constrained_layout not applied.*")
            fig.draw(renderer)  # runs the constrained layout, then draws
    finally:
        matplotlib.text.Text.draw = original
    return seen


def layout_problems(fig) -> list[str]:
    """Texts leaving the canvas, overlapping texts, fonts under MIN_FONT_PT, fractional epoch ticks."""
    width, height = fig.bbox.width, fig.bbox.height
    texts = drawn_texts(fig)
    assert texts, "nothing was drawn"
    problems = []
    for t, bb in texts:
        if bb.x0 < -TOL_PX or bb.y0 < -TOL_PX or bb.x1 > width + TOL_PX or bb.y1 > height + TOL_PX:
            problems.append(
                f"off the canvas ({width:.0f} x {height:.0f} px): {t.get_text()!r} at "
                f"x {bb.x0:.1f}..{bb.x1:.1f}, y {bb.y0:.1f}..{bb.y1:.1f}"
            )
        if t.get_fontsize() < MIN_FONT_PT:
            problems.append(f"font {t.get_fontsize():.1f} pt < {MIN_FONT_PT} pt: {t.get_text()!r}")
    for (a, ba), (b, bb) in combinations(texts, 2):
        inter_w = min(ba.x1, bb.x1) - max(ba.x0, bb.x0)
        inter_h = min(ba.y1, bb.y1) - max(ba.y0, bb.y0)
        if inter_w > TOL_PX and inter_h > TOL_PX:
            problems.append(f"overlap ({inter_w:.1f} x {inter_h:.1f} px): {a.get_text()!r} and {b.get_text()!r}")
    for ax in fig.axes:
        if ax.get_xlabel().strip().endswith("epoch"):
            lo, hi = sorted(ax.get_xlim())
            ticks = [v for v in ax.get_xticks() if lo <= v <= hi]
            if any(abs(v - round(v)) > 1e-9 for v in ticks):
                problems.append(f"fractional epoch ticks {ticks}")
    return problems


def test_the_checks_catch_clipped_overlapping_and_fractional_text():
    """The checks can fail: a title wider than its canvas, two texts on one spot, 2.5-epoch ticks."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1.5))
    ax = fig.add_subplot()
    ax.set_title("a title much too long for a two-inch-wide figure without any layout engine")
    ax.text(0.5, 0.5, "one")
    ax.text(0.5, 0.5, "two")
    ax.plot([0, 5], [0, 1])
    ax.set_xticks([0, 2.5, 5])
    ax.set_xlabel("epoch")
    found = "\n".join(layout_problems(fig))
    assert "off the canvas" in found and "overlap" in found and "'one' and 'two'" in found
    assert "fractional epoch ticks" in found


# --------------------------------------------------------------------------- the figure data
#: recorded epochs are renumbered 0, 100, 200, ...: tick labels as wide as a 1000-epoch run's
EPOCH_STRIDE = 100


def _lengthen_keys(run: Path) -> None:
    """Give the runs' first weight a long (real-looking) name in every spectra file, and the
    epochs the numbers of a long run."""
    for name in ("spectra.parquet", "subject_spectra.parquet"):
        p = run / name
        if p.is_file():
            df = pd.read_parquet(p)
            df["key"] = df["key"].replace({"layers.0.weight": f"{LONG_KEY}.weight"})
            df["step"] *= EPOCH_STRIDE
            df.to_parquet(p)
    metrics = pd.read_csv(run / "metrics.tsv", sep="\t")
    metrics["epoch"] *= EPOCH_STRIDE
    metrics.to_csv(run / "metrics.tsv", sep="\t", index=False)


def _lengthen_title(run: Path) -> None:
    """A model family, widths and activation that make the longest titles the workflow draws."""
    meta = json.loads((run / "run.json").read_text())
    meta["config"]["model"].update(
        family="transformer-encoder", hidden=[128, 128, 128, 128], activation="sigmoid-weighted-linear-unit"
    )
    meta["model"]["family"] = "transformer-encoder"
    (run / "run.json").write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two seeds of a tiny recorded MLP with long weight names and titles, and their group stats."""
    root = tmp_path_factory.mktemp("layout")
    ds = make_dataset(root / "data" / "data.npz", effect=1.0)
    dirs = [make_run(root / f"seed{s}", ds, seed=s, epochs=12, hidden=(8, 6), task="autoencode") for s in (0, 1)]
    for d in dirs:
        _lengthen_keys(d)
        _lengthen_title(d)
    stats = root / "stats"
    argv = ["group-stats", "--spectra", *[str(d / "spectra.parquet") for d in dirs]]
    argv += ["--subject-spectra", str(dirs[0] / "subject_spectra.parquet"), "--out", str(stats)]
    assert main([*argv, "--permutations", "99"]) == 0
    return {"root": root, "dirs": dirs, "stats": stats}


class _Net(nn.Module):
    """A recurrent cell and a convolution with long names: weights with a sharing dimension."""

    def __init__(self) -> None:
        super().__init__()
        self.temporal_convolution_over_components = nn.Conv1d(3, 6, 3, padding=1)
        self.recurrent_hidden_to_hidden_projection = nn.Linear(6, 6)
        self.classification_head = nn.Linear(6, 2)

    def forward(self, x):
        h = torch.relu(self.temporal_convolution_over_components(x))  # (N, 6, T)
        state = torch.zeros(x.shape[0], 6, dtype=x.dtype)
        for t in range(h.shape[2]):
            state = torch.tanh(h[:, :, t] + self.recurrent_hidden_to_hidden_projection(state))
        return self.classification_head(state)


@pytest.fixture(scope="module")
def shared_spectra(tmp_path_factory):
    """A spectra file with sharing-dimension spectra and top-3 group subspaces, 10 recorded steps."""
    torch.manual_seed(0)
    model = _Net().double()
    x, y = torch.randn(12, 3, 7, dtype=torch.float64), torch.randint(0, 2, (12,))
    groups = torch.tensor([0] * 6 + [1] * 6)
    rec = SpectralRecorder(model, stats=("grad",), sharing=True, subspaces=3)
    path = tmp_path_factory.mktemp("shared") / "spectra.parquet"
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with SpectraWriter(path) as w:
        for _ in range(10):
            opt.zero_grad()
            with rec.record(groups=groups) as snap:
                F.cross_entropy(model(x), y).backward()
            w.write(snap)
            opt.step()
    return path


def _mni_map(path: Path, scale: float, bump: float, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    aff = np.diag([8.0, 8.0, 8.0, 1.0])
    aff[:3, 3] = [-90, -126, -72]
    data = scale * np.abs(rng.normal(size=(23, 27, 23))).astype(np.float32)
    data[8:14, 10:16, 8:14] += bump
    nib.save(nib.Nifti1Image(data, aff), path)
    return path


# ------------------------------------------------------------------------------- every figure
def _captured(monkeypatch, module) -> list:
    """Figures passed to ``module.save_figure`` (the real one still writes them)."""
    figs: list = []
    original = module.save_figure

    def keep(fig, *args, **kwargs):
        figs.append(fig)
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(module, "save_figure", keep)
    return figs


def _spectra_all_panels(runs, out: Path, test: str | None):
    from autospec.figures import spectra_figure

    d0, d1 = runs["dirs"]
    panels = dict.fromkeys("ABCDEF", d0) | {"T": d1, "W": d1, "G": [d0, d1], "H": [d0, d1]}
    spectra_figure(panels, runs["stats"], out, None, test=test, group_names=LONG_GROUPS)


def _spectra_two_panels(runs, out: Path, test: str | None):
    from autospec.figures import spectra_figure

    d0, d1 = runs["dirs"]
    spectra_figure({"A": d0, "G": [d0, d1]}, runs["stats"], out, None, test=test, group_names=LONG_GROUPS)


def _triptych(runs, out: Path, test: str | None):
    from autospec.figures import layer_triptych

    layer_triptych(runs["dirs"][0], f"{LONG_KEY}.weight", out, None, group=1)


def _curves(runs, out: Path, test: str | None):
    from autospec.figures import training_curves

    d0, d1 = runs["dirs"]
    training_curves({f"{LONG_KEY} seed 0": d0, f"{LONG_KEY} seed 1": d1}, out, None)


def _brain(runs, out: Path, test: str | None):
    from autospec.figures import brain_maps

    root = runs["root"]
    # small values and a small difference (the issue's colorbar ticks at ±0.026 overlapped)
    hc = _mni_map(root / "hc.nii.gz", 0.01, 0.0, 0)
    sz = _mni_map(root / "sz.nii.gz", 0.01, 0.026, 1)
    brain_maps({LONG_GROUPS[0]: hc, LONG_GROUPS[1]: sz}, out, None)


FIGURES: dict[str, tuple[str, Callable]] = {
    "spectra, panels A-H, T, W; paper's test": (
        "spectra_figure",
        lambda r, o: _spectra_all_panels(r, o, "paper_step_tests"),
    ),
    "spectra, panels A-H, T, W; seed test": ("spectra_figure", lambda r, o: _spectra_all_panels(r, o, "seed_tests")),
    "spectra, two panels; recommended test": ("spectra_figure", lambda r, o: _spectra_two_panels(r, o, None)),
    "triptych": ("spectra_figure", lambda r, o: _triptych(r, o, None)),
    "curves": ("spectra_figure", lambda r, o: _curves(r, o, None)),
    "brain": ("brain", lambda r, o: _brain(r, o, None)),
}


@pytest.mark.parametrize("name", list(FIGURES))
def test_workflow_figures_keep_every_text_readable(name, runs, tmp_path, monkeypatch):
    import importlib

    module_name, draw = FIGURES[name]
    figs = _captured(monkeypatch, importlib.import_module(f"autospec.figures.{module_name}"))
    draw(runs, tmp_path / "fig.png")
    assert len(figs) == 1 and (tmp_path / "fig.png").stat().st_size > 0
    problems = layout_problems(figs[0])
    assert not problems, f"{name}:\n" + "\n".join(problems)


def test_sharing_figure_keeps_every_text_readable(shared_spectra, tmp_path):
    from autospec.figures.sharing import sharing_figure

    for summary in ("sigma1", "nuclear"):
        fig = sharing_figure(shared_spectra, out_png=tmp_path / f"{summary}.png", summary=summary, group=1)
        problems = layout_problems(fig)
        assert not problems, "\n".join(problems)


def test_principal_angles_figure_keeps_every_text_readable(shared_spectra, tmp_path):
    from autospec.figures.angles import principal_angles_figure

    fig = principal_angles_figure(shared_spectra, 0, 1, out_png=tmp_path / "a.png", names=LONG_GROUPS)
    problems = layout_problems(fig)
    assert not problems, "\n".join(problems)


def test_a_rank_one_weight_is_one_visible_row_with_an_integer_tick():
    """A weight with one singular value (an RNN's input weight on one feature, a decoder to one
    output) fills its heat map: one row of cells, tick 0, not an empty -0.5..0.5 axis."""
    from matplotlib.collections import QuadMesh
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    from autospec.figures.spectra_figure import _heatmap

    fig = Figure()
    ax = fig.add_subplot()
    steps, idx = np.arange(0, 1000, 100), np.array([0])
    _heatmap(ax, steps, idx, np.linspace(1, 2, 10)[None, :], LogNorm(1, 2))
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    (x0, y0), (x1, y1) = mesh.get_datalim(ax.transData).get_points()
    assert (y0, y1) == (-0.5, 0.5) and x0 <= 0 and x1 >= 900
    lo, hi = sorted(ax.get_ylim())
    assert [v for v in ax.get_yticks() if lo <= v <= hi] == [0]
