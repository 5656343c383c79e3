"""``autospec group-stats``: group tests on recorded spectra -> TSV + Parquet tables + manifest.

Writes, into ``--out DIR``, all-or-nothing:

- ``paper_step_tests`` and ``paper_index_tests``: the seed paper's t-tests (not valid inference),
  one block per run (column ``run``);
- ``seed_tests`` (with two or more runs, read as seeds of one configuration): Welch t,
  permutation test, Hedges' g and BH q-values across seeds;
- with ``--subject-spectra``: ``subject_maxt_tests`` (the recommended test: max-|t| permutation
  over every weight × epoch × summary, FWER-adjusted p per cell and one global p),
  ``subject_cv_test`` (cross-validated classifier on the per-subject features) and
  ``subject_tests`` (per-cell Welch/permutation, BH q-values); adjusted for the covariate columns
  of ``subjects.tsv`` (Freedman–Lane) unless ``--no-covariates``;
- ``manifest.json``: inputs with sha256, parameters, versions, and every output's sha256.

Subject-level tests are valid inference only for networks trained without the group labels
(auto-encoding): when the run's task is ``classify`` a warning says so and the tables carry
``valid_inference = False`` (see docs/statistics.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InputError
from ..rundir import (
    RunDir,
    load_spectra,
    read_run_json,
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
        nargs="+",
        default=None,
        metavar="F",
        help="per-subject spectra (group column = sample index) for subject-level tests; several files "
        "(one per seed of the same configuration, same subjects) are averaged per subject",
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
    parser.add_argument(
        "--covariates",
        default=None,
        metavar="A,B,...",
        help="subjects.tsv columns to adjust the subject-level tests for (default: every column "
        "other than index, subject_id, group, class, split)",
    )
    parser.add_argument("--no-covariates", action="store_true", help="do not adjust for covariates")


def _write_tables(out: Path, tables: dict[str, pd.DataFrame], inputs: list[Path], params: dict[str, Any]) -> list[Path]:
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


def _meta(run_dir: Path, key: str) -> object:
    """First value of ``key`` anywhere in the run's run.json (None if absent)."""

    def find(d: object) -> object:
        if isinstance(d, dict):
            if key in d:
                return d[key]
            for v in d.values():
                found = find(v)
                if found is not None:
                    return found
        return None

    return find(read_run_json(run_dir))


def _seed_sizes(args: argparse.Namespace, run_dirs: list[Path], names: dict[int, str]) -> tuple[dict[int, int], str]:
    """Group sizes for the seed tests' size normalisation, and why (none when matched or switched off)."""
    if _meta(run_dirs[0], "group_sampling") == "matched":
        return {}, "matched"  # equal-size subsets per group: nothing to normalise
    if args.no_size_normalisation:
        return {}, "none"
    if args.group_sizes:
        try:
            return dict(enumerate(int(s) for s in args.group_sizes.split(","))), "group_size"
        except ValueError:
            raise InputError(f"--group-sizes: expected integers like 75,72, got {args.group_sizes!r}") from None
    sizes = run_group_sizes(run_dirs[0], names)
    return sizes, "group_size" if sizes else "none"


def _covariates(args: argparse.Namespace, subj: pd.DataFrame, path: Path) -> pd.DataFrame | None:
    """Covariate columns of subjects.tsv (indexed by sample index, with subject_id for messages)."""
    from ..stats import covariate_columns

    if args.no_covariates:
        return None
    available = covariate_columns(subj)
    wanted = [c.strip() for c in args.covariates.split(",") if c.strip()] if args.covariates else available
    missing = [c for c in wanted if c not in subj.columns]
    if missing:
        raise InputError(f"{path}: no covariate column(s) {missing}; the table has {available or 'none'}")
    if not wanted:
        return None
    cols = (["subject_id"] if "subject_id" in subj.columns else []) + wanted
    return subj.set_index("index")[cols]


def _training_subjects(table: pd.DataFrame, sdf: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """With a ``split`` column, the subjects the network was trained on (the spectra's own subjects).

    Held-out subjects' gradients come from a network that never saw them: they are not
    exchangeable with the training subjects', so the tests use one kind only — the training
    subjects (``split == train``) when the spectra hold any of them, else every subject recorded.
    """
    if "split" not in table.columns:
        return table, "all"
    train = table["split"].astype(str).str.lower() == "train"
    recorded = table["index"].isin(sdf.loc[sdf["group"] >= 0, "group"].unique())
    if (train & recorded).any():
        return table[train & recorded], "train split"
    return table[recorded], "recorded subjects"


def _subject_tables(
    args: argparse.Namespace, names: dict[int, str]
) -> tuple[dict[str, pd.DataFrame], list[Path], dict[str, Any]]:
    from ..stats import subject_cv_test, subject_maxt_tests, subject_tests

    first = args.subject_spectra[0]
    subj_path = args.subjects or RunDir(first.parent).subjects
    if not subj_path.is_file():
        raise InputError(f"{subj_path}: subjects table not found (needed for --subject-spectra)")
    # subjects.tsv names groups as the dataset does (run.json); --group-names may rename them
    known = {**names, **run_group_names(first.parent)}
    table = read_subjects(subj_path)
    sdfs = [load_spectra(p) for p in args.subject_spectra]
    table, used_split = _training_subjects(table, sdfs[0])
    sdfs = [d[d["group"].isin(table["index"])] for d in sdfs]
    sdf = sdfs[0] if len(sdfs) == 1 else sdfs
    groups = subject_group_ids(table, known, subj_path)
    cov = _covariates(args, table, subj_path)
    task = _meta(first.parent, "task")
    valid = task != "classify"
    tables: dict[str, pd.DataFrame] = {}
    try:
        tables["subject_maxt_tests"] = subject_maxt_tests(
            sdf, groups, names, args.permutations, args.seed, covariates=cov
        )
        tables["subject_cv_test"] = subject_cv_test(sdf, groups, names, min(args.permutations, 999), args.seed)
        tables["subject_tests"] = subject_tests(sdf, groups, names, args.permutations, args.seed, covariates=cov)
    except ValueError as err:
        raise InputError(f"{subj_path if 'covariate' in str(err) else first}: {err}") from None
    for t in tables.values():
        t["valid_inference"] = valid
    if not valid:
        print(
            f"warning: {first}: the network was trained to classify; its per-subject gradients "
            "depend on the labels, so the subject-level tests are not valid inference (docs/statistics.md)",
            file=sys.stderr,
        )
    params = {
        "task": task,
        "subject_tests_valid": valid,
        "subjects_tested": used_split,
        "covariates": [c for c in (cov.columns if cov is not None else []) if c != "subject_id"],
    }
    params["subject_spectra_seeds"] = len(sdfs)
    return tables, [*args.subject_spectra, subj_path], params


def run(args: argparse.Namespace) -> int:
    from ..stats import paper_index_tests, paper_step_tests, seed_tests

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
    normalisation = "none"
    if len(runs) >= 2:
        sizes, normalisation = _seed_sizes(args, run_dirs, names)
        try:
            tables["seed_tests"] = seed_tests(runs, names, sizes or None, args.permutations, args.seed)
        except ValueError as err:
            raise InputError(f"--spectra: {err}") from None
        if normalisation == "matched":
            tables["seed_tests"]["normalisation"] = "matched"

    extra: dict[str, Any] = {}
    if args.subject_spectra is not None:
        subject, used, extra = _subject_tables(args, names)
        tables.update(subject)
        inputs += used

    params = {
        "group_names": names,
        "group_sizes": sizes,
        "permutations": args.permutations,
        "seed": args.seed,
        "n_runs": len(runs),
        "size_normalisation": normalisation,
        "fdr": "Benjamini-Hochberg per (table, summary); subject_maxt_tests: FWER by max-|t| permutation",
        **extra,
    }
    for p in _write_tables(args.out, tables, inputs, params):
        print(p)
    return 0
