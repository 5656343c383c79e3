"""The paper's spectra figure, the layer triptych and training curves — each with provenance.

``spectra_figure``: one (data set, model) as in the seed paper's figures. Trajectory panels
(by default every label but G and H) show, for each recorded weight, log₁₀ σ(G) of the whole
batch as a heat map of singular-value index × epoch; values beyond the numerical rank
(``rank_zero``) are empty cells. Group-difference panels (G, H by default) show per weight the
quantity the marking test tests, over epochs, with its 95 % band and the epochs the test rejects
marked on that same curve (see :mod:`.difference`); the caption names each panel's test and
quotes its measured false-positive rate and power from the package's calibration table.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from ..errors import InputError
from ..provenance.sidecar import build_sidecar, save_figure
from .difference import DEFAULT_TEST, PanelTest, apply_marks, choose, descriptive, draw
from .sidecar_fields import provenance_fields
from .style import HEATMAP_CMAP, OKABE_ITO, fit_text, new_figure, panel_label, paper_style, short_key

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import QuadMesh
    from matplotlib.colorbar import Colorbar
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.figure import Figure

DIFF_LABELS = ("G", "H")
#: ``test`` choices of :func:`spectra_figure` (group-stats table stems); None = the recommended one
MARKING_CHOICES = ("subject_maxt_tests", "subject_tests", "seed_tests", "paper_step_tests")


def _dirs(value: os.PathLike[str] | str | Sequence[os.PathLike[str] | str]) -> list[Path]:
    return [Path(v) for v in ([value] if isinstance(value, (str, os.PathLike)) else value)]


def _spectra(run_dir: Path, used: list[Path], name: str = "spectra") -> pd.DataFrame:
    from ..rundir import RunDir, load_spectra

    p = getattr(RunDir(run_dir), name)
    df = load_spectra(p)
    used.append(p)
    return df


def _find(d: Any, key: str) -> Any:
    """First value of ``key`` anywhere in nested dicts (run.json layout is the trainer's)."""
    if isinstance(d, dict):
        if key in d:
            return d[key]
        for v in d.values():
            found = _find(v, key)
            if found is not None:
                return found
    return None


def run_title(run_dir: Path) -> str:
    """``AE [32] relu`` style title from run.json, else the directory name."""
    from ..rundir import read_run_json

    meta = read_run_json(run_dir)
    task, hidden, act = _find(meta, "task"), _find(meta, "hidden"), _find(meta, "activation")
    family = _find(meta, "family")
    acts = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid", "gelu": "GELU", "linear": "Linear"}
    candidates = [
        {"autoencode": "AE", "classify": "Cls"}.get(str(task), str(task)) if task else None,
        str(family).upper() if family else None,
        f"[{','.join(map(str, hidden))}]" if isinstance(hidden, (list, tuple)) else None,
        acts.get(str(act).lower(), str(act)) if act else None,
    ]
    parts = [p for p in candidates if p]
    return " ".join(parts) if parts else run_dir.name


def _matrix(df: pd.DataFrame, key: str, stat: str, group: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sel = df[(df["key"] == key) & (df["stat"] == stat) & (df["group"] == group)]
    if sel.empty:
        raise InputError(f"no {stat} spectra of {key!r} for group {group} in the spectra file")
    if "rank_zero" in sel:  # beyond the numerical rank: no data, an empty cell
        sel = sel.assign(value=sel["value"].where(~sel["rank_zero"].fillna(False).astype(bool)))
    z = sel.pivot_table(index="index", columns="step", values="value", aggfunc="first", dropna=False)
    return z.columns.to_numpy(), z.index.to_numpy(), z.to_numpy(dtype=float)


#: relative size below which a singular value counts as numerically zero: float32 rounding
#: (the recorder works in float32 on float32 models) times a generous dimension factor
_ZERO_RTOL = float(np.finfo(np.float32).eps) * 64


def _mask_zeros(z: np.ndarray) -> np.ndarray:
    """NaN for exact or numerical zeros (σ ≤ σ₁ · rtol per epoch): rank deficiency shows as blank."""
    top = np.nanmax(np.where(np.isfinite(z), z, np.nan), axis=0, initial=0.0)
    return np.where(np.isfinite(z) & (z > top * _ZERO_RTOL) & (z > 0), z, np.nan)


def _lognorm(values: np.ndarray) -> LogNorm | None:
    from matplotlib.colors import LogNorm

    v = values[np.isfinite(values) & (values > 0)]
    if not v.size:
        return None
    return LogNorm(vmin=v.min(), vmax=v.max() if v.max() > v.min() else v.min() * 10)


def _colorbar(fig: Figure, mappable: ScalarMappable, axes: Axes | Sequence[Axes], label: str) -> Colorbar:
    from matplotlib.ticker import FuncFormatter, LogFormatterSciNotation, LogLocator

    cb = fig.colorbar(mappable, ax=axes, label=label, aspect=30, pad=0.02, fraction=0.08)
    lo, hi = mappable.norm.vmin, mappable.norm.vmax  # matplotlib stores set limits as float
    if not (isinstance(lo, (int, float)) and isinstance(hi, (int, float))):  # else ``hi / lo`` raises TypeError
        raise TypeError(f"colour bar {label!r}: colour scale limits are not set (vmin={lo}, vmax={hi})")
    narrow = hi / lo < 30  # under ~1.5 decades: label 1-2-5 steps, not only powers of 10
    cb.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if narrow else (1.0,), numticks=5))
    cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}") if narrow else LogFormatterSciNotation())
    cb.ax.minorticks_off()
    return cb


def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges around sorted cell centres (midpoints; a lone centre gets a unit-wide cell)."""
    c = np.asarray(centres, dtype=float)
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def _heatmap(ax: Axes, steps: np.ndarray, idx: np.ndarray, z: np.ndarray, norm: Normalize | None) -> QuadMesh:
    from matplotlib.ticker import MaxNLocator

    # cell edges given explicitly: "nearest" shading cannot size a single row (a rank-1 weight)
    m = ax.pcolormesh(_edges(steps), _edges(idx), z, norm=norm, cmap=HEATMAP_CMAP, shading="flat", rasterized=True)
    ax.set_ylim(idx.max() + 0.5, idx.min() - 0.5)  # σ₁ on top, as in a sorted spectrum
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True, min_n_ticks=1))
    ax.set_facecolor("0.93")  # numerically zero values: light grey
    return m


def spectra_figure(
    run_dirs_by_panel: Mapping[str, os.PathLike[str] | str | Sequence[os.PathLike[str] | str] | None],
    stats_dir: os.PathLike[str] | str | Mapping[str, os.PathLike[str] | str] | None,
    out_png: os.PathLike[str] | str | None,
    out_pdf: os.PathLike[str] | str | None,
    *,
    diff_labels: Sequence[str] = DIFF_LABELS,
    summary: str = "log_nuclear",
    test: str | None = None,
    alpha: float = 0.05,
    effect: float = 1.0,
    group_names: Mapping[int, str] | None = None,
    provenance: Mapping[str, Any] | None = None,
    sidecar_path: os.PathLike[str] | str | None = None,
) -> Path:
    """Draw the paper-style spectra figure; returns the sidecar path.

    ``run_dirs_by_panel`` maps a panel label to a run directory (or a list of seed runs);
    labels mapped to None or a missing directory are skipped. ``stats_dir`` is one
    ``group-stats`` output directory for every difference panel or a mapping label -> directory.
    ``test`` picks the marking test (one of :data:`MARKING_CHOICES`); None = the recommended
    one, drawn only where it is valid inference. ``effect`` is the planted effect whose measured
    power the caption quotes.
    """
    from ..rundir import RunDir

    if test is not None and test not in MARKING_CHOICES:
        raise InputError(f"spectra figure: unknown marking test {test!r}; choose one of {', '.join(MARKING_CHOICES)}")
    panels = {}
    for label, v in sorted(run_dirs_by_panel.items()):
        dirs = _dirs(v) if v is not None else []
        dirs = [d for d in dirs if RunDir(d).spectra.is_file()]
        if dirs:
            panels[label] = dirs
    if not panels:
        raise InputError("spectra figure: none of the panels' run directories holds a spectra.parquet")
    used: list[Path] = []
    data = {
        lab: [_spectra(d, used) for d in (dirs if lab in diff_labels else dirs[:1])] for lab, dirs in panels.items()
    }
    keys = {lab: list(dict.fromkeys(dfs[0]["key"])) for lab, dfs in data.items()}
    diffs = _difference_panels(panels, data, stats_dir, diff_labels, summary, test, effect, group_names, used)
    counts = apply_marks({lab: pt for lab, (pt, _) in diffs.items()}, alpha)

    ncols = min(4 if len(panels) > 6 else 3, len(panels))
    nrows = -(-len(panels) // ncols)
    layers = max(len(k) for k in keys.values())
    with paper_style():
        fig = new_figure(height_in=nrows * (0.75 * layers + 0.75) + 0.3 + 0.25 * len(diffs))
        grid = fig.add_gridspec(nrows, ncols)
        for i, (lab, dfs) in enumerate(data.items()):
            sub = grid[i // ncols, i % ncols].subgridspec(len(keys[lab]), 1)
            axes = [fig.add_subplot(sub[j]) for j in range(len(keys[lab]))]
            for ax in axes[1:]:
                ax.sharex(axes[0])
            panel_label(axes[0], lab, run_title(panels[lab][0]))
            if lab in diffs:
                draw(axes, keys[lab], *diffs[lab])
            else:
                _draw_heatmaps(fig, axes, keys[lab], dfs[0])
            for ax in axes[:-1]:
                ax.tick_params(labelbottom=False)
            axes[-1].xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
            axes[-1].set_xlabel("epoch")
        if diffs:
            fig.supxlabel(_caption(diffs, counts, alpha), fontsize=5.5, ha="left", x=0.01)
        fit_text(fig)
        params = {
            "panels": {k: [str(d) for d in v] for k, v in panels.items()},
            "summary": summary,
            "alpha": alpha,
            "effect_for_power": effect,
            "marking_test": {lab: pt.stem for lab, (pt, _) in diffs.items()},
            "panel_notes": {lab: pt.note for lab, (pt, _) in diffs.items()},
            "diff_labels": list(diff_labels),
            **counts,
        }
        side = build_sidecar("spectra", used, **provenance_fields(provenance, params))
        return save_figure(fig, out_png, out_pdf, side, sidecar_path)


def _difference_panels(  # noqa: PLR0917
    panels: Mapping[str, list[Path]],
    data: Mapping[str, list[pd.DataFrame]],
    stats_dir: os.PathLike[str] | str | Mapping[str, os.PathLike[str] | str] | None,
    diff_labels: Sequence[str],
    summary: str,
    test: str | None,
    effect: float,
    group_names: Mapping[int, str] | None,
    used: list[Path],
) -> dict[str, tuple[PanelTest, dict[int, str]]]:
    """Per difference panel: what it draws (the marking test's quantity, or a descriptive curve) and group names."""
    from ..rundir import read_run_json, resolve_group_names, run_group_sizes

    out = {}
    for lab in (lab for lab in panels if lab in diff_labels):
        ids = sorted({int(g) for g in data[lab][0]["group"].unique()})
        names = resolve_group_names(dict(group_names or {}), panels[lab], ids)
        meta = read_run_json(panels[lab][0])
        where = (meta.get("dataset", {}).get("kind"), _find(meta, "family"), _find(meta, "task"))
        sd = stats_dir.get(lab) if isinstance(stats_dir, Mapping) else stats_dir
        pt = choose(Path(sd) if sd else None, test, summary, where=where, effect=effect, used=used)
        if pt is None:
            sizes = run_group_sizes(panels[lab][0], names) or None
            note = (
                f"no {test or DEFAULT_TEST} table for this panel (e.g. no per-subject spectra): descriptive mean over "
                "the panel's runs of the size-normalised group-spectrum difference (±1.96 SE), no markers"
            )
            pt = PanelTest(descriptive(data[lab], summary, sizes), None, "none", note, "Δ " + summary)
        out[lab] = (pt, names)
    return out


def _caption(diffs: Mapping[str, tuple[PanelTest, dict[int, str]]], counts: Mapping[str, Any], alpha: float) -> str:
    lines = [f"{lab}: {pt.note}" for lab, (pt, _) in diffs.items()]
    kinds = {pt.adjust for pt, _ in diffs.values()}
    if "fwer" in kinds:
        lines.append(
            f"▼: FWER-adjusted p ≤ {counts['fwer_level_per_panel']:.3g} (α = {alpha:g}, Bonferroni over marked panels; "
            "family: every weight × epoch × summary of the panel)."
        )
    if "bh" in kinds:
        lines.append(f"▼: BH-FDR q ≤ {alpha:g} over the figure's {counts['n_tests']} tests.")
    return "\n".join(textwrap.fill(line, 175) for line in lines)


def _draw_heatmaps(fig: Any, axes: Sequence[Any], keys: Sequence[str], df: pd.DataFrame) -> None:
    mats = [_matrix(df, key, "grad", -1) for key in keys]
    mats = [(st, ix, _mask_zeros(z)) for st, ix, z in mats]
    norm = _lognorm(np.concatenate([z.ravel() for _, _, z in mats]))
    m = None
    for ax, key, (steps, idx, z) in zip(axes, keys, mats):
        m = _heatmap(ax, steps, idx, z, norm)
        ax.set_ylabel(f"{short_key(key)}\nindex")
    if norm is not None and m is not None:
        _colorbar(fig, m, axes, "σ(G)")


# --------------------------------------------------------------------------- triptych, curves
def layer_triptych(
    run_dir: os.PathLike[str] | str,
    key: str,
    out_png: os.PathLike[str] | str | None,
    out_pdf: os.PathLike[str] | str | None,
    *,
    group: int = -1,
    provenance: Mapping[str, Any] | None = None,
    sidecar_path: os.PathLike[str] | str | None = None,
) -> Path:
    """σ(A), σ(Δ) and σ(G) of one weight side by side (index × epoch heat maps)."""
    used: list[Path] = []
    run_dir = Path(run_dir)
    df = _spectra(run_dir, used)
    if key not in set(df["key"]):
        raise InputError(f"{run_dir / 'spectra.parquet'}: no weight {key!r}; recorded: {sorted(set(df['key']))}")
    with paper_style():
        fig = new_figure(height_in=2.2)
        axes = fig.subplots(1, 3, sharex=True)
        matrices = (("act", "σ(A)"), ("delta", "σ(Δ)"), ("grad", "σ(G = AᵀΔ)"))
        for ax, letter, (stat, name) in zip(axes, "ABC", matrices):
            steps, idx, z = _matrix(df, key, stat, group)
            z = _mask_zeros(z)
            m = _heatmap(ax, steps, idx, z, _lognorm(z.ravel()))
            _colorbar(fig, m, ax, "")  # the panel title names the matrix
            panel_label(ax, letter, name)
            ax.set_xlabel("epoch")
        axes[0].set_ylabel("singular-value index")
        who = "whole batch" if group == -1 else f"group {group}"
        fig.suptitle(f"{run_title(run_dir)} — {short_key(key)}, {who}")
        fit_text(fig)
        side = build_sidecar(
            "triptych", used, **provenance_fields(provenance, {"run": str(run_dir), "key": key, "group": group})
        )
        return save_figure(fig, out_png, out_pdf, side, sidecar_path)


def training_curves(
    runs: Mapping[str, os.PathLike[str] | str] | Sequence[os.PathLike[str] | str],
    out_png: os.PathLike[str] | str | None,
    out_pdf: os.PathLike[str] | str | None,
    *,
    provenance: Mapping[str, Any] | None = None,
    sidecar_path: os.PathLike[str] | str | None = None,
) -> Path:
    """Loss and accuracy / reconstruction error over epochs, one line per run (metrics.tsv); the
    held-out subjects' curves (``test_*`` columns, runs with a ``split:``) dashed beside them."""
    from ..rundir import RunDir

    if not isinstance(runs, Mapping):
        runs = {Path(r).name: r for r in runs}
    used: list[Path] = []
    tables = {}
    for label, d in runs.items():
        p = RunDir(d).metrics
        if not p.is_file():
            raise InputError(f"{p}: metrics file not found")
        t = pd.read_csv(p, sep="\t")
        if "epoch" not in t or "loss" not in t:
            raise InputError(f"{p}: metrics file lacks an 'epoch' or 'loss' column")
        tables[label] = t
        used.append(p)
    second = next((c for c in ("accuracy", "recon_error") if any(c in t for t in tables.values())), None)
    with paper_style():
        fig = new_figure(height_in=2.0, width_in=7.0 if second else 3.5)
        axes = fig.subplots(1, 2 if second else 1, squeeze=False)[0]
        held = any("test_loss" in t for t in tables.values())
        for c, (label, t) in enumerate(tables.items()):
            color = OKABE_ITO[c % len(OKABE_ITO)]
            axes[0].plot(t["epoch"], t["loss"], color=color, label=label)
            if second and second in t:
                axes[1].plot(t["epoch"], t[second], color=color, label=label)
            if "test_loss" in t:  # held-out subjects (split:), dashed in the run's colour
                axes[0].plot(t["epoch"], t["test_loss"], color=color, linestyle="--", label=f"{label} (held out)")
                if second and f"test_{second}" in t:
                    axes[1].plot(t["epoch"], t[f"test_{second}"], color=color, linestyle="--")
        axes[0].set_ylabel("loss (dashed: held out)" if held else "training loss")
        losses = [t[c] for t in tables.values() for c in ("loss", "test_loss") if c in t]
        if (pd.concat(losses) > 0).all():
            axes[0].set_yscale("log")
        if second:
            axes[1].set_ylabel({"accuracy": "accuracy", "recon_error": "reconstruction error"}[second])
        for ax, letter in zip(axes, "AB"):
            ax.set_xlabel("epoch")
            panel_label(ax, letter)
        axes[0].legend(frameon=False)
        fit_text(fig)
        side = build_sidecar(
            "curves", used, **provenance_fields(provenance, {"runs": {k: str(v) for k, v in runs.items()}})
        )
        return save_figure(fig, out_png, out_pdf, side, sidecar_path)
