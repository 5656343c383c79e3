"""The paper's spectra figure, the layer triptych and training curves — each with provenance.

``spectra_figure``: one (data set, model) as in the seed paper's figures. Trajectory panels
(by default every label but G and H) show, for each recorded weight, log₁₀ σ(G) of the whole
batch as a heat map of singular-value index × epoch. Group-difference panels (G, H by default)
show per weight the between-group difference of a spectrum summary over epochs (mean over the
panel's runs/seeds, ±1.96 Welch SE when there are several), with the epochs whose test is
significant after Benjamini–Hochberg across *all* tests marked in this figure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from ..errors import InputError
from ..provenance.sidecar import build_sidecar, save_figure
from .style import HEATMAP_CMAP, OKABE_ITO, new_figure, panel_label, paper_style, short_key

DIFF_LABELS = ("G", "H")
SUMMARY_LABEL = {"log_sigma1": "log σ₁", "log_nuclear": "log Σσ"}
#: marking tests, best first: table stem, p column, legend text
MARK_TESTS = (
    ("seed_tests", "p_perm", "seed-level permutation test"),
    ("seed_tests", "p_welch", "seed-level Welch t-test"),
    ("subject_tests", "p_perm", "subject-level permutation test"),
    ("subject_tests", "p_welch", "subject-level Welch t-test"),
    ("paper_step_tests", "p", "paper's t-test, σ as samples (NOT valid inference)"),
)


def _dirs(value) -> list[Path]:
    return [Path(v) for v in ([value] if isinstance(value, (str, os.PathLike)) else value)]


def _spectra(run_dir: Path, used: list[Path], name: str = "spectra") -> pd.DataFrame:
    from ..rundir import RunDir, load_spectra

    p = getattr(RunDir(run_dir), name)
    df = load_spectra(p)
    used.append(p)
    return df


def _find(d: Any, key: str):
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
    parts = [
        {"autoencode": "AE", "classify": "Cls"}.get(str(task), str(task)) if task else None,
        str(family).upper() if family else None,
        f"[{','.join(map(str, hidden))}]" if isinstance(hidden, (list, tuple)) else None,
        acts.get(str(act).lower(), str(act)) if act else None,
    ]
    parts = [p for p in parts if p]
    return " ".join(parts) if parts else run_dir.name


def _matrix(df: pd.DataFrame, key: str, stat: str, group: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sel = df[(df["key"] == key) & (df["stat"] == stat) & (df["group"] == group)]
    if sel.empty:
        raise InputError(f"no {stat} spectra of {key!r} for group {group} in the spectra file")
    z = sel.pivot_table(index="index", columns="step", values="value", aggfunc="first", dropna=False)
    return z.columns.to_numpy(), z.index.to_numpy(), z.to_numpy(dtype=float)


#: relative size below which a singular value counts as numerically zero: float32 rounding
#: (the recorder works in float32 on float32 models) times a generous dimension factor
_ZERO_RTOL = float(np.finfo(np.float32).eps) * 64


def _mask_zeros(z: np.ndarray) -> np.ndarray:
    """NaN for exact or numerical zeros (σ ≤ σ₁ · rtol per epoch): rank deficiency shows as blank."""
    top = np.nanmax(np.where(np.isfinite(z), z, np.nan), axis=0, initial=0.0)
    return np.where(np.isfinite(z) & (z > top * _ZERO_RTOL) & (z > 0), z, np.nan)


def _lognorm(values: np.ndarray):
    from matplotlib.colors import LogNorm

    v = values[np.isfinite(values) & (values > 0)]
    if not v.size:
        return None
    return LogNorm(vmin=v.min(), vmax=v.max() if v.max() > v.min() else v.min() * 10)


def _colorbar(fig, mappable, axes, label: str):
    from matplotlib.ticker import FuncFormatter, LogFormatterSciNotation, LogLocator

    cb = fig.colorbar(mappable, ax=axes, label=label, aspect=30, pad=0.02, fraction=0.08)
    norm = mappable.norm
    narrow = norm.vmax / norm.vmin < 30  # under ~1.5 decades: label 1-2-5 steps, not only powers of 10
    cb.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if narrow else (1.0,), numticks=5))
    cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}") if narrow else LogFormatterSciNotation())
    cb.ax.minorticks_off()
    return cb


def _heatmap(ax, steps, idx, z, norm):
    from matplotlib.ticker import MaxNLocator

    m = ax.pcolormesh(steps, idx, z, norm=norm, cmap=HEATMAP_CMAP, shading="nearest", rasterized=True)
    ax.set_ylim(idx.max() + 0.5, idx.min() - 0.5)  # σ₁ on top, as in a sorted spectrum
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    ax.set_facecolor("0.93")  # numerically zero values: light grey
    return m


def _group_diffs(dfs: list[pd.DataFrame], summary: str, sizes: dict[int, int] | None) -> pd.DataFrame:
    """Per (key, step, pair): mean over runs of summary_a − summary_b and its Welch SE."""
    from ..stats.inference import _pairs, normalise_by_group_size, spectrum_summaries

    rows = []
    for i, df in enumerate(dfs):
        s = spectrum_summaries(df[(df["stat"] == "grad") & (df["group"] >= 0)])
        s, _ = normalise_by_group_size(s[s["summary"] == summary], sizes)
        s["run"] = i
        rows.append(s)
    s = pd.concat(rows, ignore_index=True)
    w = s.pivot_table(index=["key", "step", "run"], columns="group", values="value", dropna=False)
    out = []
    for a, b in _pairs(w.columns):
        d = (w[a] - w[b]).rename("d").reset_index()
        agg = d.groupby(["key", "step"])["d"].agg(["mean", "std", "count"]).reset_index()
        ga = w[a].groupby(["key", "step"]).agg(["var", "count"])
        gb = w[b].groupby(["key", "step"]).agg(["var", "count"])
        se = np.sqrt(ga["var"] / ga["count"] + gb["var"] / gb["count"]).rename("se").reset_index()
        agg = agg.merge(se, on=["key", "step"])
        agg["group_a"], agg["group_b"] = a, b
        out.append(agg)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def _marks(stats_dir: Path | None, used: list[Path], summary: str, test: str | None):
    """(table rows with p, legend text) of the best available marking test, or (None, None)."""
    if stats_dir is None:
        return None, None
    for stem, col, text in MARK_TESTS:
        if test is not None and stem != test:
            continue
        p = Path(stats_dir) / f"{stem}.parquet"
        if not p.is_file():
            continue
        t = pd.read_parquet(p)
        if col not in t or not np.isfinite(t[col].to_numpy(dtype=float)).any():
            continue
        sel = t[t["stat"] == "grad"]
        if "summary" in sel:
            sel = sel[sel["summary"] == summary]
        if "run" in sel:
            sel = sel[sel["run"] == 0]
        used.append(p)
        return sel.rename(columns={col: "p_mark"})[["key", "step", "group_a", "group_b", "p_mark"]], text
    return None, None


def spectra_figure(
    run_dirs_by_panel: Mapping[str, os.PathLike | str | Sequence[os.PathLike | str] | None],
    stats_dir: os.PathLike | str | Mapping[str, os.PathLike | str] | None,
    out_png: os.PathLike | str | None,
    out_pdf: os.PathLike | str | None,
    *,
    diff_labels: Sequence[str] = DIFF_LABELS,
    summary: str = "log_nuclear",
    test: str | None = None,
    alpha: float = 0.05,
    group_names: Mapping[int, str] | None = None,
    provenance: Mapping[str, Any] | None = None,
    sidecar_path: os.PathLike | str | None = None,
) -> Path:
    """Draw the paper-style spectra figure; returns the sidecar path.

    ``run_dirs_by_panel`` maps a panel label to a run directory (or a list of seed runs);
    labels mapped to None or a missing directory are skipped. ``stats_dir`` is one
    ``group-stats`` output directory for every difference panel or a mapping label -> directory.
    """
    from ..rundir import RunDir, resolve_group_names, run_group_sizes
    from ..stats.multiple import bh_adjust

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
    keys = {lab: [k for k in dict.fromkeys(dfs[0]["key"])] for lab, dfs in data.items()}

    diffs, marks, legend = {}, [], None
    for lab in (lab for lab in panels if lab in diff_labels):
        ids = sorted({int(g) for g in data[lab][0]["group"].unique()})
        names = resolve_group_names(dict(group_names or {}), panels[lab], ids)
        sizes = run_group_sizes(panels[lab][0], names) or None
        diffs[lab] = (_group_diffs(data[lab], summary, sizes), names)
        sd = stats_dir.get(lab) if isinstance(stats_dir, Mapping) else stats_dir
        m, text = _marks(Path(sd) if sd else None, used, summary, test)
        if m is not None:
            legend = legend or text
            marks.append(m.assign(panel=lab))
    allmarks = pd.concat(marks, ignore_index=True) if marks else None
    if allmarks is not None:  # BH across every test this figure shows
        allmarks["q"] = bh_adjust(allmarks["p_mark"].to_numpy(dtype=float))

    ncols = min(4 if len(panels) > 6 else 3, len(panels))
    nrows = -(-len(panels) // ncols)
    layers = max(len(k) for k in keys.values())
    with paper_style():
        fig = new_figure(height_in=nrows * (0.75 * layers + 0.75) + 0.3)
        grid = fig.add_gridspec(nrows, ncols)
        for i, (lab, dfs) in enumerate(data.items()):
            sub = grid[i // ncols, i % ncols].subgridspec(len(keys[lab]), 1)
            axes = [fig.add_subplot(sub[j]) for j in range(len(keys[lab]))]
            for ax in axes[1:]:
                ax.sharex(axes[0])
            panel_label(axes[0], lab, run_title(panels[lab][0]))
            if lab in diffs:
                _draw_diff(axes, keys[lab], *diffs[lab], allmarks, lab, alpha, summary)
            else:
                mats = [_matrix(dfs[0], key, "grad", -1) for key in keys[lab]]
                mats = [(st, ix, _mask_zeros(z)) for st, ix, z in mats]
                norm = _lognorm(np.concatenate([z.ravel() for _, _, z in mats]))
                for ax, key, (steps, idx, z) in zip(axes, keys[lab], mats):
                    m = _heatmap(ax, steps, idx, z, norm)
                    ax.set_ylabel(f"{short_key(key)}\nindex")
                if norm is not None:
                    _colorbar(fig, m, axes, "σ(G)")
            for ax in axes[:-1]:
                ax.tick_params(labelbottom=False)
            axes[-1].xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
            axes[-1].set_xlabel("epoch")
        if diffs:
            n = 0 if allmarks is None else int(np.isfinite(allmarks["q"]).sum())
            lines = (
                f"Difference panels: {SUMMARY_LABEL.get(summary, summary)} of the group spectra σ(G_g), "
                "mean over the panel's runs (band: ±1.96 SE across runs).\n"
            )
            note = lines + (
                f"Markers: epochs with BH-FDR q ≤ {alpha:g} over all {n} tests in this figure ({legend})."
                if allmarks is not None
                else "No group tests given: no epochs marked."
            )
            fig.supxlabel(note, fontsize=6)
        params = {
            "panels": {k: [str(d) for d in v] for k, v in panels.items()},
            "summary": summary,
            "alpha": alpha,
            "marking_test": legend,
            "diff_labels": list(diff_labels),
            "n_tests": 0 if allmarks is None else int(np.isfinite(allmarks["q"]).sum()),
            "n_marked": 0 if allmarks is None else int((allmarks["q"] <= alpha).sum()),
        }
        side = build_sidecar("spectra", used, **_prov(provenance, params))
        return save_figure(fig, out_png, out_pdf, side, sidecar_path)


def _prov(provenance: Mapping[str, Any] | None, params: dict) -> dict[str, Any]:
    p = dict(provenance or {})
    p["params"] = {**params, **dict(p.get("params") or {})}
    return {k: p.get(k) for k in ("rule", "wildcards", "params", "command", "config", "device")}


def _draw_diff(axes, keys, diffs: pd.DataFrame, names, allmarks, lab, alpha, summary):
    pairs = diffs[["group_a", "group_b"]].drop_duplicates().itertuples(index=False) if len(diffs) else []
    pairs = list(pairs)
    for ax, key in zip(axes, keys):
        ax.axhline(0, color="0.6", lw=0.5)
        for c, (a, b) in enumerate(pairs):
            d = diffs[(diffs["key"] == key) & (diffs["group_a"] == a) & (diffs["group_b"] == b)].sort_values("step")
            color = OKABE_ITO[(c + 4) % len(OKABE_ITO)]
            ax.plot(d["step"], d["mean"], color=color, label=f"{names.get(a, a)} − {names.get(b, b)}")
            if np.isfinite(d["se"]).any():
                ax.fill_between(
                    d["step"], d["mean"] - 1.96 * d["se"], d["mean"] + 1.96 * d["se"], color=color, alpha=0.25, lw=0
                )
            if allmarks is not None:
                m = allmarks[
                    (allmarks["panel"] == lab)
                    & (allmarks["key"] == key)
                    & (allmarks["group_a"] == a)
                    & (allmarks["group_b"] == b)
                    & (allmarks["q"] <= alpha)
                ]
                hit = d[d["step"].isin(m["step"])]
                ax.plot(hit["step"], hit["mean"], ls="none", marker="v", ms=2.5, color="black")
        ax.set_ylabel(f"{short_key(key)}\nΔ {SUMMARY_LABEL.get(summary, summary)}")
    if pairs:
        axes[0].legend(loc="best", frameon=False)


# --------------------------------------------------------------------------- triptych, curves
def layer_triptych(
    run_dir: os.PathLike | str,
    key: str,
    out_png: os.PathLike | str | None,
    out_pdf: os.PathLike | str | None,
    *,
    group: int = -1,
    provenance: Mapping[str, Any] | None = None,
    sidecar_path: os.PathLike | str | None = None,
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
        for ax, (stat, name) in zip(axes, (("act", "σ(A)"), ("delta", "σ(Δ)"), ("grad", "σ(G = AᵀΔ)"))):
            steps, idx, z = _matrix(df, key, stat, group)
            z = _mask_zeros(z)
            m = _heatmap(ax, steps, idx, z, _lognorm(z.ravel()))
            _colorbar(fig, m, ax, "")  # the panel title names the matrix
            ax.set_title(name)
            ax.set_xlabel("epoch")
        axes[0].set_ylabel("singular-value index")
        who = "whole batch" if group == -1 else f"group {group}"
        fig.suptitle(f"{run_title(run_dir)} — {short_key(key)}, {who}")
        side = build_sidecar("triptych", used, **_prov(provenance, {"run": str(run_dir), "key": key, "group": group}))
        return save_figure(fig, out_png, out_pdf, side, sidecar_path)


def training_curves(
    runs: Mapping[str, os.PathLike | str] | Sequence[os.PathLike | str],
    out_png: os.PathLike | str | None,
    out_pdf: os.PathLike | str | None,
    *,
    provenance: Mapping[str, Any] | None = None,
    sidecar_path: os.PathLike | str | None = None,
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
        for ax in axes:
            ax.set_xlabel("epoch")
        axes[0].legend(frameon=False)
        side = build_sidecar("curves", used, **_prov(provenance, {"runs": {k: str(v) for k, v in runs.items()}}))
        return save_figure(fig, out_png, out_pdf, side, sidecar_path)
