"""``autospec group-stats``: group tests on recorded spectra -> TSV + Parquet tables + manifest.

Writes, into ``--out DIR``, all-or-nothing:

- ``paper_step_tests`` and ``paper_index_tests``: the seed paper's t-tests (not valid inference),
  one block per run (column ``run``);
- ``seed_tests`` (with two or more runs, read as seeds of one configuration): Welch t,
  permutation test, Hedges' g and BH q-values across seeds;
- ``subject_tests`` (with ``--subject-spectra``): the same across subjects;
- ``manifest.json``: inputs with sha256, parameters, versions, and every output's sha256.

Also holds the small readers of a training run directory (run.json, subjects.tsv, group names)
that the figures share.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InputError

NAME = "group-stats"
HELP = "Group statistics on recorded spectra: the paper's t-tests and seed/subject-level tests with FDR."

SPECTRA_COLUMNS = ("step", "key", "stat", "group", "index", "value")


# --------------------------------------------------------------------------- run-dir readers
def parse_mapping(text: str | None, what: str) -> dict[str, str]:
    """``k=v,k2=v2`` -> dict (values may not contain commas)."""
    out: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in (text or "").split(","))):
        if "=" not in item:
            raise InputError(f"{what}: expected key=value, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def parse_group_names(text: str | None) -> dict[int, str]:
    """``HC,SZ`` -> {0: 'HC', 1: 'SZ'}."""
    names = [s.strip() for s in (text or "").split(",") if s.strip()]
    return dict(enumerate(names))


def read_run_json(run_dir: Path) -> dict[str, Any]:
    p = Path(run_dir) / "run.json"
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{p}: not valid JSON ({err.msg} at line {err.lineno})") from None


def _id_map(value, cast) -> dict[int, Any]:
    """Accept a list (index = id), {id: v} or {name: id} (names only) or [{id:, name:}]."""
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            return {int(v.get("id", i)): cast(v.get("name", v.get("size", v.get("n")))) for i, v in enumerate(value)}
        return {i: cast(v) for i, v in enumerate(value)}
    if isinstance(value, dict):
        if all(str(k).lstrip("-").isdigit() for k in value):
            return {int(k): cast(v) for k, v in value.items()}
        if cast is str and all(isinstance(v, int) for v in value.values()):
            return {int(v): str(k) for k, v in value.items()}
    return {}


def _lookup(meta: dict, keys: tuple[str, ...]):
    for scope in (meta, meta.get("dataset") or {}, meta.get("data") or {}):
        if isinstance(scope, dict):
            for k in keys:
                if k in scope:
                    return scope[k]
    return None


def run_group_names(run_dir: Path) -> dict[int, str]:
    """Group names from run.json (``groups`` / ``group_names``), else {}."""
    return _id_map(_lookup(read_run_json(run_dir), ("groups", "group_names")), str)


def read_subjects(path: Path) -> pd.DataFrame:
    """subjects.tsv: ``index`` (sample index in subject_spectra) and ``group`` (id or name)."""
    try:
        df = pd.read_csv(path, sep="\t")
    except (OSError, pd.errors.ParserError) as err:
        raise InputError(f"{path}: cannot read subjects table ({err})") from None
    missing = [c for c in ("index", "group") if c not in df.columns]
    if missing:
        raise InputError(f"{path}: subjects table lacks column(s) {missing}")
    return df


def subject_group_ids(subjects: pd.DataFrame, names: dict[int, str], path: Path) -> pd.Series:
    """Sample index -> group id; the ``group`` column may hold ids or group names."""
    g = subjects["group"]
    if pd.api.types.is_integer_dtype(g):
        return pd.Series(g.to_numpy(), index=subjects["index"].to_numpy())
    ids = {str(v): k for k, v in names.items()}
    names = dict(sorted(names.items()))
    unknown = sorted(set(g.astype(str)) - set(ids))
    if unknown:
        raise InputError(f"{path}: group name(s) {unknown} are not among the known groups {names}; "
                         "pass --group-names in group-id order")
    return pd.Series(g.astype(str).map(ids).to_numpy(dtype=int), index=subjects["index"].to_numpy())


def run_group_sizes(run_dir: Path, names: dict[int, str] | None = None) -> dict[int, int]:
    """Group sizes from run.json (``group_sizes``/``group_counts``) or subjects.tsv, else {}."""
    sizes = _id_map(_lookup(read_run_json(run_dir), ("group_sizes", "group_counts")), int)
    if sizes:
        return sizes
    subj = Path(run_dir) / "subjects.tsv"
    if subj.is_file():
        names = names or run_group_names(Path(run_dir))
        try:
            ids = subject_group_ids(read_subjects(subj), names, subj)
        except InputError:
            return {}
        return {int(k): int(v) for k, v in ids.value_counts().items()}
    return {}


def resolve_group_names(explicit: dict[int, str] | None, run_dirs, ids) -> dict[int, str]:
    """Explicit names win, then run.json, then ``group0``, ``group1``, ..."""
    names: dict[int, str] = {}
    for d in run_dirs:
        names = run_group_names(Path(d)) or names
        if names:
            break
    names.update(explicit or {})
    return {int(i): names.get(int(i), f"group{int(i)}") for i in ids if int(i) >= 0}


def load_spectra(path: Path) -> pd.DataFrame:
    if not Path(path).is_file():
        raise InputError(f"{path}: spectra file not found")
    try:
        df = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a non-Parquet file
        raise InputError(f"{path}: not a readable Parquet spectra file ({type(err).__name__})") from None
    missing = [c for c in SPECTRA_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: spectra file lacks column(s) {missing}")
    return df


# --------------------------------------------------------------------------- command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spectra", required=True, nargs="+", type=Path, metavar="RUN/spectra.parquet",
                        help="spectra of one run, or of several seeds of one configuration")
    parser.add_argument("--subject-spectra", type=Path, default=None, metavar="F",
                        help="per-subject spectra (group column = sample index) for subject-level tests")
    parser.add_argument("--subjects", type=Path, default=None, metavar="subjects.tsv",
                        help="sample index -> group table (default: subjects.tsv beside --subject-spectra)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR")
    parser.add_argument("--group-names", default=None, metavar="A,B,...",
                        help="names of group ids 0,1,... (default: run.json, else group0, group1, ...)")
    parser.add_argument("--group-sizes", default=None, metavar="N0,N1,...",
                        help="samples per group id, to put seed-level summaries on a per-sample scale "
                             "(default: run.json or subjects.tsv of the first run; none if unknown)")
    parser.add_argument("--no-size-normalisation", action="store_true",
                        help="compare raw group spectra across seeds (unequal group sizes then differ under the null)")
    parser.add_argument("--permutations", type=int, default=9999, metavar="N",
                        help="label permutations per test (0 = skip; exact enumeration when fewer splits exist)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the permutations")


def _write_tables(out: Path, tables: dict[str, pd.DataFrame], inputs: list[Path], params: dict) -> list[Path]:
    from ..atomic import atomic_outputs, sha256_file
    from ..manifest import build_manifest

    paths = []
    for name in tables:
        paths += [out / f"{name}.tsv", out / f"{name}.parquet"]
    man_path = out / "manifest.json"
    with atomic_outputs(*paths, man_path) as tmps:
        for i, df in enumerate(tables.values()):
            df.to_csv(tmps[2 * i], sep="\t", index=False, na_rep="NaN")
            df.to_parquet(tmps[2 * i + 1], index=False)
        man = build_manifest("group-stats", inputs=inputs, params=params)
        man["outputs"] = [
            {"path": str(p), "sha256": sha256_file(t), "bytes": t.stat().st_size} for p, t in zip(paths, tmps)
        ]
        tmps[-1].write_text(json.dumps(man, indent=2, sort_keys=True, default=str) + "\n")
    return paths + [man_path]


def run(args: argparse.Namespace) -> int:
    from ..stats import paper_index_tests, paper_step_tests, seed_tests, subject_tests

    if args.permutations < 0:
        raise InputError(f"--permutations must be >= 0, got {args.permutations}")
    runs = [load_spectra(p) for p in args.spectra]
    run_dirs = [p.parent for p in args.spectra]
    ids = sorted({int(g) for df in runs for g in df["group"].unique()})
    if not [i for i in ids if i >= 0]:
        raise InputError(f"{args.spectra[0]}: no group spectra (only the whole batch, group -1)")
    names = resolve_group_names(parse_group_names(args.group_names), run_dirs, ids)
    inputs = list(args.spectra) + [d / "run.json" for d in run_dirs if (d / "run.json").is_file()]

    tables: dict[str, pd.DataFrame] = {}
    for name, fn in (("paper_step_tests", paper_step_tests), ("paper_index_tests", paper_index_tests)):
        parts = []
        for i, (p, df) in enumerate(zip(args.spectra, runs)):
            t = fn(df, names)
            t.insert(1, "run", i)
            t.insert(2, "run_path", str(p))
            parts.append(t)
        tables[name] = pd.concat(parts, ignore_index=True)

    sizes: dict[int, int] = {}
    if len(runs) >= 2:
        if not args.no_size_normalisation:
            if args.group_sizes:
                try:
                    sizes = dict(enumerate(int(s) for s in args.group_sizes.split(",")))
                except ValueError:
                    raise InputError(f"--group-sizes: expected integers like 75,72, got {args.group_sizes!r}") from None
            else:
                sizes = run_group_sizes(run_dirs[0], names)
        try:
            tables["seed_tests"] = seed_tests(runs, names, sizes or None, args.permutations, args.seed)
        except ValueError as err:
            raise InputError(f"--spectra: {err}") from None

    if args.subject_spectra is not None:
        subj_path = args.subjects or args.subject_spectra.parent / "subjects.tsv"
        if not subj_path.is_file():
            raise InputError(f"{subj_path}: subjects table not found (needed for --subject-spectra)")
        # subjects.tsv names groups as the dataset does (run.json); --group-names may rename them
        known = {**names, **run_group_names(args.subject_spectra.parent)}
        subj = subject_group_ids(read_subjects(subj_path), known, subj_path)
        sdf = load_spectra(args.subject_spectra)
        try:
            tables["subject_tests"] = subject_tests(sdf, subj, names, args.permutations, args.seed)
        except ValueError as err:
            raise InputError(f"{args.subject_spectra}: {err}") from None
        inputs += [args.subject_spectra, subj_path]

    params = {
        "group_names": names, "group_sizes": sizes, "permutations": args.permutations, "seed": args.seed,
        "n_runs": len(runs), "size_normalisation": bool(sizes),
        "fdr": "Benjamini-Hochberg per (table, summary)",
    }
    for p in _write_tables(args.out, tables, inputs, params):
        print(p)
    return 0
