"""``autospec group-stats``: group tests on recorded spectra -> TSV + Parquet tables + manifest.

Writes, into ``--out DIR``, all-or-nothing:

- ``paper_step_tests`` and ``paper_index_tests``: the seed paper's t-tests (not valid inference),
  one block per run (column ``run``);
- ``seed_tests`` (with two or more runs, read as seeds of one configuration): Welch t,
  permutation test, Hedges' g and BH q-values across seeds;
- ``subject_tests`` (with ``--subject-spectra``): the same across subjects;
- ``manifest.json``: inputs with sha256, parameters, versions, and every output's sha256.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from ..errors import InputError
from ..rundir import (
    RunDir,
    load_spectra,
    read_subjects,
    resolve_group_names,
    run_group_names,
    run_group_sizes,
    subject_group_ids,
)

NAME = "group-stats"
HELP = "Group statistics on recorded spectra: the paper's t-tests and seed/subject-level tests with FDR."


# --------------------------------------------------------------------------- argument parsing
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


# --------------------------------------------------------------------------- command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--spectra",
        required=True,
        nargs="+",
        type=Path,
        metavar="RUN/spectra.parquet",
        help="spectra of one run, or of several seeds of one configuration",
    )
    parser.add_argument(
        "--subject-spectra",
        type=Path,
        default=None,
        metavar="F",
        help="per-subject spectra (group column = sample index) for subject-level tests",
    )
    parser.add_argument(
        "--subjects",
        type=Path,
        default=None,
        metavar="subjects.tsv",
        help="sample index -> group table (default: subjects.tsv beside --subject-spectra)",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR")
    parser.add_argument(
        "--group-names",
        default=None,
        metavar="A,B,...",
        help="names of group ids 0,1,... (default: run.json, else group0, group1, ...)",
    )
    parser.add_argument(
        "--group-sizes",
        default=None,
        metavar="N0,N1,...",
        help="samples per group id, to put seed-level summaries on a per-sample scale "
        "(default: run.json or subjects.tsv of the first run; none if unknown)",
    )
    parser.add_argument(
        "--no-size-normalisation",
        action="store_true",
        help="compare raw group spectra across seeds (unequal group sizes then differ under the null)",
    )
    parser.add_argument(
        "--permutations",
        type=int,
        default=9999,
        metavar="N",
        help="label permutations per test (0 = skip; exact enumeration when fewer splits exist)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the permutations")


def _write_tables(out: Path, tables: dict[str, pd.DataFrame], inputs: list[Path], params: dict) -> list[Path]:
    from ..atomic import atomic_outputs
    from ..manifest import build_manifest, manifest_text

    paths = []
    for name in tables:
        paths += [out / f"{name}.tsv", out / f"{name}.parquet"]
    man_path = out / "manifest.json"
    with atomic_outputs(*paths, man_path) as tmps:
        for i, df in enumerate(tables.values()):
            df.to_csv(tmps[2 * i], sep="\t", index=False, na_rep="NaN")
            df.to_parquet(tmps[2 * i + 1], index=False)
        man = build_manifest("group-stats", inputs=inputs, outputs=list(zip(paths, tmps)), params=params)
        tmps[-1].write_text(manifest_text(man))
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
    inputs = list(args.spectra) + [RunDir(d).run_json for d in run_dirs if RunDir(d).run_json.is_file()]

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
        subj_path = args.subjects or RunDir(args.subject_spectra.parent).subjects
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
        "group_names": names,
        "group_sizes": sizes,
        "permutations": args.permutations,
        "seed": args.seed,
        "n_runs": len(runs),
        "size_normalisation": bool(sizes),
        "fdr": "Benjamini-Hochberg per (table, summary)",
    }
    for p in _write_tables(args.out, tables, inputs, params):
        print(p)
    return 0
