"""Group-difference panels (G, H): the quantity a test tests, its marks, and the caption that names it.

A difference panel draws, per weight and epoch, the ``diff`` column of the marking test's own
table — mean over subjects of the per-subject summary (subject-level tests), mean over seeds of
the group-summary difference (seed-level tests), or the difference of mean singular values of one
run (the paper's view (a)) — with a 95 % band (± t_{0.975, df} · |diff / t|). Markers sit on that
curve at the epochs the test rejects: FWER-adjusted p ≤ α for the max-|t| test (Bonferroni over
the figure's marked panels), BH over every marked test of the figure otherwise.

Which test: ``test=None`` means the recommended test (``subject_maxt_tests``). It marks a panel
when the panel's group-stats directory has it and it is valid inference (a network trained without
the labels); otherwise the panel is drawn without markers and the caption says why, whether the
test was named or defaulted. Every caption names the
test and quotes its measured false-positive rate and power (``autospec.stats.calibration``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as st

from ..stats.calibration import caption
from ..stats.multiple import bh_adjust
from ..stats.recommended import FAMILIES, MARKING_TESTS, PAPER_NOTE
from ..stats.summaries import group_pairs, normalise_by_group_size, spectrum_summaries
from .style import OKABE_ITO, short_key

SUMMARY_LABEL = {"log_sigma1": "log σ₁", "log_nuclear": "log Σσ", "log_erank": "log erank"}
DEFAULT_TEST = "subject_maxt_tests"


@dataclass
class PanelTest:
    """What one difference panel shows: the curve, its band and its marks, and what to say about them."""

    table: pd.DataFrame  # key, step, group_a, group_b, diff, lo, hi, p
    stem: str | None  # group-stats table the curve and marks come from (None: descriptive)
    adjust: str  # "fwer" | "bh" | "none"
    note: str  # the caption's sentence about this panel
    ylabel: str


def _band(t: pd.DataFrame) -> pd.DataFrame:
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.abs(t["diff"].to_numpy(float) / t["t"].to_numpy(float))
        crit = st.t.ppf(0.975, t["df"].to_numpy(float))
    half = np.where(np.isfinite(se * crit), se * crit, np.nan)
    return t.assign(lo=t["diff"] - half, hi=t["diff"] + half)


def _select(stem: str, t: pd.DataFrame, summary: str) -> pd.DataFrame:
    """Rows of one marking table for the grad spectra and the figure's summary, with a p column."""
    sel = t[t["stat"] == "grad"] if "stat" in t else t
    if "summary" in sel:
        sel = sel[sel["summary"] == summary]
    if "run" in sel:
        sel = sel[sel["run"] == 0]
    if stem == "subject_maxt_tests":
        p = sel["p_fwer"]
    elif "p_perm" in sel and np.isfinite(sel["p_perm"].to_numpy(float)).any():
        p = sel["p_perm"]
    else:
        p = sel["p_welch"] if "p_welch" in sel else sel["p"]
    return _band(sel.assign(p=p.to_numpy(float)))[["key", "step", "group_a", "group_b", "diff", "lo", "hi", "p"]]


def _ylabel(stem: str | None, summary: str) -> str:
    s = SUMMARY_LABEL.get(summary, summary)
    return {
        "subject_maxt_tests": f"Δ mean {s}\n(per subject)",
        "subject_tests": f"Δ mean {s}\n(per subject)",
        "seed_tests": f"Δ {s}\n(group spectra)",
        "paper_step_tests": "Δ mean σ\n(one run)",
    }.get(stem or "", f"Δ {s}\n(group spectra)")


def choose(
    stats_dir: Path | None,
    test: str | None,
    summary: str,
    *,
    where: tuple[str | None, str | None, str | None],
    effect: float,
    used: list[Path],
) -> PanelTest | None:
    """The panel's marking test (see the module docstring); None when the panel has no test table."""
    if stats_dir is None:
        return None
    stem = test or DEFAULT_TEST
    path = Path(stats_dir) / f"{stem}.parquet"
    if not path.is_file():
        return None
    t = pd.read_parquet(path)
    used.append(path)
    family = FAMILIES[MARKING_TESTS[stem]]
    if "family" in t and set(t["family"]) == {"subject_maxt_seedavg"}:  # per-subject summaries averaged over seeds
        family = FAMILIES["subject_maxt_seedavg"]
    valid = bool(t["valid_inference"].all()) if "valid_inference" in t else True
    table = _select(stem, t, summary)
    line = caption(family.id, *where, effect=effect)
    if not family.valid:
        why = PAPER_NOTE if family.id.startswith("paper") else "not valid inference: seeds are not subjects"
        line = f"{line} [{why}]"
    elif not valid:
        if stem == DEFAULT_TEST:  # the recommended test never marks where it is not valid inference
            return PanelTest(table.assign(p=np.nan), stem, "none", "no markers: " + _INVALID, _ylabel(stem, summary))
        line = f"{line} [not valid inference here: {_INVALID}]"
    adjust = "fwer" if stem == "subject_maxt_tests" else "bh"
    return PanelTest(table, stem, adjust, line, _ylabel(stem, summary))


_INVALID = (
    "the network was trained to classify the groups, so its per-subject gradients depend on the labels "
    "(docs/statistics.md, 'Classifiers')"
)


def descriptive(dfs: Sequence[pd.DataFrame], summary: str, sizes: Mapping[int, int] | None) -> pd.DataFrame:
    """Per (key, step, pair): mean over runs of the size-normalised group-summary difference (no test)."""
    rows = []
    for i, df in enumerate(dfs):
        s = spectrum_summaries(df[(df["stat"] == "grad") & (df["group"] >= 0)])
        s, _ = normalise_by_group_size(s[s["summary"] == summary], sizes)
        rows.append(s.assign(run=i))
    s = pd.concat(rows, ignore_index=True)
    w = s.pivot_table(index=["key", "step", "run"], columns="group", values="value", dropna=False)
    out = []
    for a, b in group_pairs(w.columns):
        d = (w[a] - w[b]).rename("diff").reset_index()
        agg = d.groupby(["key", "step"])["diff"].agg(["mean", "std", "count"]).reset_index()
        half = 1.96 * agg["std"] / np.sqrt(agg["count"])
        out.append(
            agg.assign(group_a=a, group_b=b, diff=agg["mean"], lo=agg["mean"] - half, hi=agg["mean"] + half, p=np.nan)
        )
    cols = ["key", "step", "group_a", "group_b", "diff", "lo", "hi", "p"]
    return pd.concat(out, ignore_index=True)[cols] if out else pd.DataFrame(columns=cols)


def apply_marks(panels: Mapping[str, PanelTest], alpha: float) -> dict[str, Any]:
    """Set each panel's ``mark`` column; returns the counts for the sidecar."""
    fwer = [p for p in panels.values() if p.adjust == "fwer"]
    bh = [p for p in panels.values() if p.adjust == "bh"]
    level = alpha / max(1, len(fwer))  # Bonferroni over the figure's max-t panels
    for p in fwer:
        p.table["mark"] = np.nan_to_num(p.table["p"].to_numpy(float), nan=1.0) <= level
    if bh:
        q = bh_adjust(np.concatenate([p.table["p"].to_numpy(float) for p in bh]))
        i = 0
        for p in bh:
            p.table["mark"] = np.nan_to_num(q[i : i + len(p.table)], nan=1.0) <= alpha
            i += len(p.table)
    for p in panels.values():
        if p.adjust == "none":
            p.table["mark"] = False
    tested = [p for p in panels.values() if p.adjust != "none"]
    return {
        "n_tests": int(sum(np.isfinite(p.table["p"].to_numpy(float)).sum() for p in tested)),
        "n_marked": int(sum(p.table["mark"].sum() for p in tested)),
        "fwer_level_per_panel": level if fwer else None,
    }


def draw(axes: Sequence[Any], keys: Sequence[str], panel: PanelTest, names: Mapping[int, str]) -> None:
    """One difference panel: per weight the tested quantity over epochs, its band, and the marks."""
    t = panel.table
    pairs = list(t[["group_a", "group_b"]].drop_duplicates().itertuples(index=False)) if len(t) else []
    for ax, key in zip(axes, keys):
        ax.axhline(0, color="0.6", lw=0.5)
        for c, (a, b) in enumerate(pairs):
            d = t[(t["key"] == key) & (t["group_a"] == a) & (t["group_b"] == b)].sort_values("step")
            color = OKABE_ITO[(c + 4) % len(OKABE_ITO)]
            ax.plot(d["step"], d["diff"], color=color, label=f"{names.get(a, a)} − {names.get(b, b)}")
            if np.isfinite(d["lo"].to_numpy(float)).any():
                ax.fill_between(d["step"], d["lo"], d["hi"], color=color, alpha=0.25, lw=0)
            hit = d[d["mark"].astype(bool)]
            ax.plot(hit["step"], hit["diff"], ls="none", marker="v", ms=2.5, color="black")
        ax.set_ylabel(f"{short_key(key)}\n{panel.ylabel}")
    if pairs:
        axes[0].legend(loc="best", frameon=False)
