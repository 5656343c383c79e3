"""Merge the calibration replicates into tables: TSV, markdown, JSON and the package's calibration table.

Rates: ``k / n`` with a Clopper–Pearson 95 % interval. For families decided once per data set
(unit ``replicate``) n counts replicates, which are independent, so the interval is honest. For
per-cell families (unit ``test``) n pools the cells of every replicate; cells of one replicate
are dependent, so that interval is too narrow (read it as a guide) — the ``*_bh`` rows give the
honest per-replicate view of the same p-values.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autospec.atomic import write_text_atomic
from autospec.stats.calibration import clopper_pearson
from autospec.stats.recommended import FAMILIES, RECOMMENDED_TEST

PACKAGE_TABLE = Path(__file__).resolve().parents[1] / "src" / "autospec" / "stats" / "calibration_table.json"
DOCS_TABLE = Path(__file__).resolve().parents[1] / "docs" / "calibration_table.md"
KEYS = ["test", "data", "model", "task", "effect", "n_sz", "n_hc"]
TASK = {"autoencode": "AE", "classify": "Cls", "-": "–"}
NULL_ORDER = ["20/20", "72/75", "30/10", "15/45"]


PARAMS = ["epochs", "every", "perms", "group_perms", "cv_perms", "retrain_perms"]
IDENTITY = ["test", "data", "model", "task", "effect", "n_sz", "n_hc", "replicate"]


def load_runs(runs: Path) -> pd.DataFrame:
    """Every replicate file under ``runs`` (``<setting>/<data>/<plan>/r<NNN>.parquet``), one row per record.

    Files of different plans may both hold a family for one replicate (e.g. the raw-input
    families): the first is kept. Replicates must share the training and permutation
    parameters, and a model × task the same number of seeds.
    """
    files = sorted(runs.glob("*/*/*/r*.parquet"))
    if not files:
        raise SystemExit(f"no replicate files under {runs}")
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    distinct = df[PARAMS].drop_duplicates()
    if len(distinct) > 1:
        raise SystemExit(
            f"replicates under {runs} were run with different parameters:\n{distinct.to_string(index=False)}"
        )
    seeds = df.groupby(["model", "task"])["seeds"].nunique()
    if (seeds > 1).any():
        raise SystemExit(f"a model × task was run with different numbers of seeds: {seeds[seeds > 1].to_dict()}")
    return df.drop_duplicates(IDENTITY, keep="first").reset_index(drop=True)


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby(KEYS, sort=True)
    out = g.agg(
        unit=("unit", "first"),
        n=("n_tests", "sum"),
        k=("n_reject", "sum"),
        replicates=("replicate", "nunique"),
        wall_s=("wall_s", "mean"),
    ).reset_index()
    ci = [clopper_pearson(int(k), int(n)) for k, n in zip(out["k"], out["n"])]
    out["rate"] = np.where(out["n"] > 0, out["k"] / out["n"].clip(lower=1), np.nan)
    out["ci_low"], out["ci_high"] = [c[0] for c in ci], [c[1] for c in ci]
    out["sizes"] = out["n_sz"].astype(str) + "/" + out["n_hc"].astype(str)
    return out


def _cell(r: pd.Series) -> str:
    if not r["n"]:
        return "–"
    if r["effect"] == 0:
        return f"{r['rate']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
    return f"{r['rate']:.2f}"


def wide_table(agg: pd.DataFrame) -> pd.DataFrame:
    """One row per family × data × model × task; null settings and effects as columns."""
    agg = agg.copy()
    agg["col"] = np.where(
        agg["effect"] == 0, "null " + agg["sizes"], "effect " + agg["effect"].map("{:g}".format) + " " + agg["sizes"]
    )
    agg["txt"] = agg.apply(_cell, axis=1)
    w = agg.pivot_table(index=["data", "model", "task", "test"], columns="col", values="txt", aggfunc="first")
    nulls = [f"null {s}" for s in NULL_ORDER if f"null {s}" in w.columns]
    effects = sorted(
        (c for c in w.columns if c.startswith("effect")), key=lambda c: (c.split()[2], float(c.split()[1]))
    )
    order = list(FAMILIES)
    w = w[nulls + effects].reset_index()
    w["_o"] = w["test"].map({t: i for i, t in enumerate(order)}).fillna(len(order))
    w = w.sort_values(["data", "model", "task", "_o"]).drop(columns="_o")
    w["unit"] = w["test"].map(lambda t: FAMILIES[t].unit if t in FAMILIES else "")
    return w.fillna("–")


def md(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    return (
        "\n".join([head, rule, *("| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False))])
        + "\n"
    )


def layer_pattern(df: pd.DataFrame, test: str) -> pd.DataFrame:
    """Null rejections of a per-cell family per weight (from each record's detail), balanced vs unbalanced nulls."""
    rows = []
    sel = df[(df["test"] == test) & (df["effect"] == 0) & df["detail"].notna()]
    for r in sel.itertuples(index=False):
        balance = "balanced" if abs(r.n_sz - r.n_hc) <= 3 else "unbalanced"
        for key, (k, n) in json.loads(r.detail).items():
            rows.append(
                {"data": r.data, "model": r.model, "task": r.task, "nulls": balance, "key": key, "k": k, "n": n}
            )
    if not rows:
        return pd.DataFrame()
    t = pd.DataFrame(rows).groupby(["data", "model", "task", "nulls", "key"], sort=True)[["k", "n"]].sum().reset_index()
    t["rejections"] = t["k"].astype(str) + "/" + t["n"].astype(str)
    t["rate"] = (t["k"] / t["n"]).round(3)
    total = t.groupby(["data", "model", "task", "nulls"])["k"].transform("sum")
    share = (t["k"] / total.where(total > 0)).round(2)
    t["share of the model's rejections"] = share.map(lambda v: "–" if pd.isna(v) else f"{v:.2f}")
    return t.drop(columns=["k", "n"])


def package_entries(agg: pd.DataFrame) -> list[dict[str, Any]]:
    cols = ["test", "data", "model", "task", "n_sz", "n_hc", "effect", "unit", "n", "k", "rate", "ci_low", "ci_high"]
    out = []
    for r in agg[cols].itertuples(index=False):
        e = dict(zip(cols, r))
        e = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in e.items()}
        e["n_sz"], e["n_hc"], e["n"], e["k"] = int(e["n_sz"]), int(e["n_hc"]), int(e["n"]), int(e["k"])
        e["effect"] = float(e["effect"])
        for k in ("rate", "ci_low", "ci_high"):
            e[k] = round(float(e[k]), 4) if np.isfinite(e[k]) else None
        out.append(e)
    return out


def wall_per_replicate(df: pd.DataFrame) -> dict[str, float]:
    """Mean wall time of one replicate (all models, tasks and seeds of one data kind), per data × sizes."""
    per_model = df.groupby(["data", "effect", "n_sz", "n_hc", "replicate", "model", "task"])["wall_s"].first()
    per_rep = per_model.groupby(["data", "n_sz", "n_hc", "effect", "replicate"]).sum()
    mean = per_rep.groupby(["data", "n_sz", "n_hc"]).mean().round(1)
    return {f"{d} {a}/{b}": float(v) for (d, a, b), v in mean.items()}


def merge(runs: Path, out: Path, package_table: Path | None, docs_table: Path | None = None) -> int:
    df = load_runs(runs)
    agg = aggregate(df)
    wide = wide_table(agg)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "calibration.tsv", agg.drop(columns=["sizes"]).to_csv(sep="\t", index=False))
    settings = sorted(
        {(float(e), int(a), int(b)) for e, a, b in df[["effect", "n_sz", "n_hc"]].itertuples(index=False)}
    )
    reps = df.groupby(["effect", "n_sz", "n_hc"])["replicate"].nunique()
    meta = {
        "parameters": {k: int(v) for k, v in df[PARAMS].iloc[0].items()},
        "seeds": {
            f"{m} {t}": int(v) for (m, t), v in df.groupby(["model", "task"])["seeds"].first().items() if m != "input"
        },
        "generated": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''} ({platform.node()})".strip(),
        "settings": [
            {"effect": e, "n_sz": a, "n_hc": b, "replicates": int(reps.loc[(e, a, b)])} for e, a, b in settings
        ],
        "wall_s_per_replicate": wall_per_replicate(df),
    }
    write_text_atomic(out / "calibration.json", json.dumps(meta, indent=2) + "\n")
    text = [render_md(agg, wide, df, meta)]
    write_text_atomic(out / "calibration.md", "\n".join(text))
    from calibration_text import readme_table, summary

    tables = {
        "recommended": readme_table(agg, [RECOMMENDED_TEST, "subject_maxt_seedavg"]),
        "inputs": readme_table(agg, ["input_maxt", "input_cv", "input_spectrum_maxt"]),
        "classify": readme_table(agg, ["subject_maxt", "subject_welch", "subject_maxt_retrain"], task="classify"),
    }
    text = summary(agg) + "".join(f"\n## {k}\n\n{v}" for k, v in tables.items())
    write_text_atomic(out / "calibration_summary.md", text)
    from calibration_compact import compact_table

    write_text_atomic(docs_table or DOCS_TABLE, compact_table(agg, meta["generated"]))
    pkg = package_table or PACKAGE_TABLE
    tests = {t.id: {"label": t.label, "unit": t.unit, "valid": t.valid} for t in FAMILIES.values()}
    payload = {
        "schema": "autospec-calibration/1",
        "source": "benchmarks/results/calibration.md",
        "alpha": 0.05,
        "recommended": RECOMMENDED_TEST,
        "generated": meta["generated"],
        "tests": tests,
        "entries": package_entries(agg),
    }
    write_text_atomic(pkg, json.dumps(payload, indent=1, sort_keys=False) + "\n")
    print(out / "calibration.md")
    return 0


def render_md(agg: pd.DataFrame, wide: pd.DataFrame, df: pd.DataFrame, meta: dict[str, Any]) -> str:
    from calibration_text import document

    return document(agg, wide, meta, layer_pattern(df, "paper_index"), md=md)
