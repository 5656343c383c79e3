"""Phenotype tables (COBRE-style CSV, BIDS ``participants.tsv``) and group assignment.

Cells are read as text (so ``None`` in COBRE's Diagnosis column stays the string ``"None"`` and
IDs keep leading zeros). Group maps compare a cell with a map key as text; a numeric key (YAML
``295.3:``) also matches a cell with the same numeric value (``295.30``).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InputError
from .textfile import read_text

log = logging.getLogger(__name__)

FORMATS = ("cobre", "bids")
DISENROLLED = "disenrolled"
#: separator of combined group names (``SZ-Male``)
GROUP_SEP = "-"


def read_phenotype(path: os.PathLike[str] | str, format: str = "cobre", id_column: str | None = None) -> pd.DataFrame:
    """Read a phenotype table indexed by subject ID (str); every cell is text.

    ``format="cobre"``: comma-separated; the ID column is ``id_column`` or else the first column
    (COBRE leaves its header empty). Rows with any cell ``Disenrolled`` are dropped; how many and
    which are in ``df.attrs["n_disenrolled"]`` / ``df.attrs["disenrolled"]`` and logged.
    ``format="bids"``: tab-separated ``participants.tsv``, ID column ``participant_id`` by default.

    Raises
    ------
    InputError
        Missing/unreadable file, unknown format or ID column, empty or duplicate IDs.
    """
    p = Path(path)
    if format not in FORMATS:
        raise InputError(f"{p}: unknown phenotype format {format!r} (use one of {', '.join(FORMATS)})")
    sep = "," if format == "cobre" else "\t"
    text = read_text(p, "phenotype file")  # BOM and CRLF as spreadsheet tools write them
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, csv.Error) as err:
        raise InputError(f"{p}: unreadable phenotype file ({str(err).splitlines()[0]})") from None
    if df.shape[1] < 2:
        raise InputError(
            f"{p}: phenotype table has {df.shape[1]} column(s); is it "
            f"{'comma' if sep == ',' else 'tab'}-separated ({format} format)?"
        )
    df = df.rename(columns=lambda c: str(c).strip())
    df = df.apply(lambda col: col.str.strip())

    default_id_column = df.columns[0] if format == "cobre" else "participant_id"
    col = default_id_column if id_column is None else id_column
    if col not in df.columns:
        raise InputError(f"{p}: ID column {col!r} not found (columns: {', '.join(map(str, df.columns))})")
    ids = df[col]
    if (ids == "").any():
        row = int((ids == "").to_numpy().nonzero()[0][0]) + 2  # +header, 1-based
        raise InputError(f"{p}: line {row} has an empty subject ID (column {col!r})")

    dropped: list[str] = []
    if format == "cobre":
        mask = df.apply(lambda c: c.str.lower() == DISENROLLED).any(axis=1)
        dropped = ids[mask].tolist()
        if dropped:
            log.info("%s: dropped %d Disenrolled subject(s): %s", p, len(dropped), ", ".join(dropped))
        df = df[~mask]
        ids = ids[~mask]
    dup = ids[ids.duplicated()]
    if len(dup):
        raise InputError(f"{p}: subject {dup.iat[0]} appears more than once (column {col!r})")
    df = df.drop(columns=[col])
    df.index = pd.Index(ids.tolist(), name="subject_id", dtype=str)
    df.attrs["n_disenrolled"] = len(dropped)
    df.attrs["disenrolled"] = dropped
    df.attrs["path"] = str(p)
    return df


def _matches(cell: str, key: Any) -> bool:
    if isinstance(key, bool):  # YAML yes/no/true -> bool; compare with its text
        return cell.lower() in (("true", "yes", "1") if key else ("false", "no", "0"))
    if str(key) == cell:
        return True
    if isinstance(key, (int, float)):
        try:
            return float(cell) == float(key)
        except ValueError:
            return False
    return False


def map_column(df: pd.DataFrame, column: str, mapping: Mapping[Any, str], what: str = "group") -> pd.Series:
    """Map each subject's ``column`` value through ``mapping``; unknown values are errors."""
    where = df.attrs.get("path", "phenotype")
    if column not in df.columns:
        raise InputError(f"{where}: {what} column {column!r} not found (columns: {', '.join(map(str, df.columns))})")
    out = {}
    for sid, cell in df[column].items():
        hits = [name for key, name in mapping.items() if _matches(cell, key)]
        if not hits:
            raise InputError(
                f"subject {sid}: {what} column {column!r} has value {cell!r}, "
                f"not in the map ({', '.join(map(str, mapping))}); map it or exclude the subject"
            )
        out[sid] = hits[0]
    return pd.Series(out, name=what, dtype=str).reindex(df.index)


def assign_groups(
    df: pd.DataFrame,
    groups_cfg: Mapping[str, Any],
    exclude: Iterable[str] = (),
    what: str = "group",
    min_size: int = 2,
) -> pd.Series:
    """Group name of each kept subject, indexed by subject ID, in ``df`` order.

    ``groups_cfg["by"]`` lists ``{column, map}``; the mapped values are joined with ``-`` in that
    order (``SZ-Male``). ``groups_cfg.get("keep")`` limits the result to those combined names.
    ``exclude``d subjects are skipped before mapping (their values are not checked).

    Raises
    ------
    InputError
        Missing column, a value not in its map, a ``keep`` name no combination can produce, a
        group with fewer than ``min_size`` subjects.
    """
    by = list(groups_cfg.get("by") or [])
    if not by:
        raise InputError(f"field groups.by: no columns given for the {what}s")
    excluded = set(exclude)
    sub = df[~df.index.isin(excluded)]
    parts = [map_column(sub, spec["column"], spec["map"], what) for spec in by]
    names = parts[0]
    for part in parts[1:]:
        names = names + GROUP_SEP + part

    keep = groups_cfg.get("keep")
    if keep is not None:
        possible = {""}
        for spec in by:
            possible = {(f"{a}{GROUP_SEP}{b}" if a else b) for a in possible for b in spec["map"].values()}
        unknown = [k for k in keep if k not in possible]
        if unknown:
            raise InputError(
                f"field groups.keep: {unknown[0]!r} is not a possible group (possible: {', '.join(sorted(possible))})"
            )
        dropped = names[~names.isin(list(keep))]
        if len(dropped):
            log.info(
                "groups.keep: dropped %d subject(s) of other groups: %s",
                len(dropped),
                ", ".join(dropped.index),
            )
        names = names[names.isin(list(keep))]

    counts = names.value_counts()
    expected = list(keep) if keep is not None else sorted(counts.index)
    for g in expected:
        n = int(counts.get(g, 0))
        if n < min_size:
            raise InputError(
                f"{what} {g!r} has {n} subject(s), at least {min_size} are needed "
                f"(check the phenotype, groups.keep and exclude)"
            )
    names.name = what
    return names
