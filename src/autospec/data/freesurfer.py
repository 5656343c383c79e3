"""Readers for FreeSurfer segmentation statistics (``aseg.stats``, ``asegstats2table`` output).

``aseg.stats`` (written by ``mri_segstats``) is a text file: header lines start with ``#``;
``# Measure <Key>, <Short>, <Description>, <value>, <unit>`` lines hold global measures (eTIV
among them); ``# ColHeaders`` names the columns of the whitespace-separated rows that follow.

FreeSurfer 5.x differs from current releases in two ways handled here: the thalamus rows are
named ``Left-/Right-Thalamus-Proper`` (renamed to ``Left-/Right-Thalamus``), and older
``mri_segstats`` wrote the intracranial volume as ``IntraCranialVol, ICV`` (the same atlas-based
estimate later renamed ``EstimatedTotalIntraCranialVol, eTIV``); it is used when eTIV is absent.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

log = logging.getLogger(__name__)

#: FreeSurfer 5.3 structure names -> current names
FS53_RENAMES: dict[str, str] = {
    "Left-Thalamus-Proper": "Left-Thalamus",
    "Right-Thalamus-Proper": "Right-Thalamus",
}

ETIV_KEY = "EstimatedTotalIntraCranialVol"
ETIV_SHORT = "eTIV"
_LEGACY_ICV_KEYS = ("IntraCranialVol", "ICV")
_NON_NUMERIC_COLUMNS = {"StructName"}


@dataclass
class AsegStats:
    """Contents of one ``aseg.stats`` file.

    Attributes
    ----------
    path : Path
        The file read.
    measures : dict
        ``# Measure`` key -> (value, unit), each measure under both its key and its short name
        (e.g. ``EstimatedTotalIntraCranialVol`` and ``eTIV``).
    table : pandas.DataFrame
        One row per structure, the ``# ColHeaders`` columns (numeric except ``StructName``).
    volumes : pandas.Series
        ``StructName`` -> ``Volume_mm3`` (FreeSurfer 5.3 names mapped to current ones).
    """

    path: Path
    measures: dict[str, tuple[float, str]]
    table: pd.DataFrame
    volumes: pd.Series

    @property
    def etiv(self) -> float:
        """Estimated total intracranial volume in mm^3."""
        return self.measures[ETIV_SHORT][0]


def rename_structure(name: str) -> str:
    """Current FreeSurfer name of ``name`` (maps FreeSurfer 5.3 names)."""
    return FS53_RENAMES.get(name, name)


def _parse_measure(line: str, path: Path, lineno: int) -> tuple[str, str, float, str]:
    # "# Measure Key, Short, Description (may hold commas), value, unit"
    parts = [p.strip() for p in line[len("# Measure") :].split(",")]
    if len(parts) < 5:
        raise InputError(f"{path}:{lineno}: malformed '# Measure' line (expected 5 fields)")
    key, short, value, unit = parts[0], parts[1], parts[-2], parts[-1]
    try:
        val = float(value)
    except ValueError:
        raise InputError(f"{path}:{lineno}: measure {key} has non-numeric value {value!r}") from None
    if not math.isfinite(val):
        raise InputError(f"{path}:{lineno}: measure {key} is {value}")
    return key, short, val, unit


def read_aseg_stats(path: os.PathLike | str) -> AsegStats:
    """Read one FreeSurfer ``aseg.stats`` file.

    Raises
    ------
    InputError
        Missing file, no ``# ColHeaders`` line, no eTIV (or legacy ICV) measure, a row with the
        wrong number of columns, a non-numeric or non-finite value, duplicate structure names.
    """
    p = Path(path)
    try:
        text = p.read_text(errors="replace")
    except FileNotFoundError:
        raise InputError(f"{p}: aseg.stats file not found") from None
    except OSError as err:
        raise InputError(f"{p}: cannot read aseg.stats ({err.strerror or err})") from None

    measures: dict[str, tuple[float, str]] = {}
    columns: list[str] | None = None
    rows: list[list[str]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if line.startswith("# Measure"):
                key, short, val, unit = _parse_measure(line, p, lineno)
                # short names are unique; some old files reuse a key (BrainSeg) for two measures
                measures[short] = (val, unit)
                measures.setdefault(key, (val, unit))
            elif line.startswith("# ColHeaders"):
                columns = line[len("# ColHeaders") :].split()
            continue
        if columns is None:
            raise InputError(f"{p}:{lineno}: data row before the '# ColHeaders' line")
        fields = line.split()
        if len(fields) != len(columns):
            raise InputError(f"{p}:{lineno}: row has {len(fields)} columns, '# ColHeaders' names {len(columns)}")
        rows.append(fields)

    if columns is None:
        raise InputError(f"{p}: no '# ColHeaders' line (not an aseg.stats file?)")
    for needed in ("StructName", "Volume_mm3"):
        if needed not in columns:
            raise InputError(f"{p}: '# ColHeaders' has no {needed} column")
    if not rows:
        raise InputError(f"{p}: no structure rows after '# ColHeaders'")
    if ETIV_KEY in measures or ETIV_SHORT in measures:
        measures[ETIV_KEY] = measures[ETIV_SHORT] = measures.get(ETIV_KEY, measures.get(ETIV_SHORT))
    else:
        legacy = next((k for k in _LEGACY_ICV_KEYS if k in measures), None)
        if legacy is None:
            raise InputError(f"{p}: no eTIV measure ('# Measure {ETIV_KEY}, {ETIV_SHORT}, ...' line missing)")
        log.info("%s: using legacy IntraCranialVol (ICV) measure as eTIV", p)
        measures[ETIV_KEY] = measures[ETIV_SHORT] = measures[legacy]
    if measures[ETIV_SHORT][0] <= 0:
        raise InputError(f"{p}: eTIV is {measures[ETIV_SHORT][0]}, must be positive")

    table = pd.DataFrame(rows, columns=columns)
    for col in columns:
        if col in _NON_NUMERIC_COLUMNS:
            continue
        num = pd.to_numeric(table[col], errors="coerce")
        bad = num.isna() | ~np.isfinite(num.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(
                f"{p}: structure {table['StructName'].iat[i]}: column {col} has "
                f"non-numeric or non-finite value {table[col].iat[i]!r}"
            )
        table[col] = num
    table["StructName"] = table["StructName"].map(rename_structure)
    dup = table["StructName"][table["StructName"].duplicated()]
    if len(dup):
        raise InputError(f"{p}: structure {dup.iat[0]} listed twice")
    volumes = pd.Series(
        table["Volume_mm3"].to_numpy(dtype=float),
        index=pd.Index(table["StructName"], name="StructName"),
        name="Volume_mm3",
    )
    return AsegStats(path=p, measures=measures, table=table, volumes=volumes)


def read_asegstats2table(path: os.PathLike | str, sep: str = "\t") -> pd.DataFrame:
    """Read the table written by FreeSurfer's ``asegstats2table`` (one row per subject).

    The top-left cell is ``Measure:volume``; the result is indexed by subject (str) with one
    float column per structure or measure (FreeSurfer 5.3 names mapped to current ones).
    """
    p = Path(path)
    try:
        df = pd.read_csv(p, sep=sep, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InputError(f"{p}: asegstats2table file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"{p}: unreadable asegstats2table file ({err})") from None
    if df.columns.empty or df.columns[0].strip() != "Measure:volume":
        first = df.columns[0] if len(df.columns) else ""
        raise InputError(f"{p}: top-left cell is {first!r}, expected 'Measure:volume'")
    df = df.rename(columns=lambda c: rename_structure(c.strip()))
    subjects = df.iloc[:, 0].str.strip()
    if (subjects == "").any():
        raise InputError(f"{p}: row {int(np.flatnonzero(subjects == '')[0]) + 2} has no subject id")
    if subjects.duplicated().any():
        raise InputError(f"{p}: subject {subjects[subjects.duplicated()].iat[0]} listed twice")
    out = df.iloc[:, 1:].copy()
    out.index = pd.Index(subjects.to_list(), name="subject")
    for col in out.columns:
        num = pd.to_numeric(out[col].str.strip(), errors="coerce")
        bad = num.isna() | ~np.isfinite(num.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            subj = out.index[int(np.flatnonzero(bad.to_numpy())[0])]
            raise InputError(f"{p}: subject {subj}: column {col} has non-numeric value {out.at[subj, col]!r}")
        out[col] = num.astype(float)
    return out


def aseg_stats_path(subjects_dir: os.PathLike | str, subject: str) -> Path:
    """``<SUBJECTS_DIR>/<subject>/stats/aseg.stats``."""
    return Path(subjects_dir) / subject / "stats" / "aseg.stats"


def volumes_table(
    subjects_dir: os.PathLike | str,
    subject_ids: Sequence[str],
    structures: Iterable[str] | None = None,
) -> tuple[pd.DataFrame, pd.Series]:
    """Volumes (mm^3) of ``subject_ids`` (rows, in order) x structures (columns), and eTIV.

    ``structures=None`` takes every structure present for all subjects, in the order of the
    first subject's file; a requested structure that a subject lacks is an error.
    """
    sdir = Path(subjects_dir)
    if not subject_ids:
        raise InputError(f"{sdir}: no subjects requested")
    stats: list[AsegStats] = []
    for sid in subject_ids:
        if not (sdir / sid).is_dir():
            raise InputError(f"subject {sid}: FreeSurfer subject directory {sdir / sid} not found")
        f = aseg_stats_path(sdir, sid)
        if not f.is_file():
            raise InputError(f"subject {sid}: {f} not found")
        stats.append(read_aseg_stats(f))

    if structures is None:
        common = set.intersection(*(set(s.volumes.index) for s in stats))
        names = [n for n in stats[0].volumes.index if n in common]
        dropped = set(stats[0].volumes.index) - common
        if dropped:
            log.info("structures not present for every subject, left out: %s", sorted(dropped))
        if not names:
            raise InputError(f"{sdir}: no structure is present in every subject's aseg.stats")
    else:
        names = [rename_structure(n) for n in structures]
        for sid, s in zip(subject_ids, stats):
            missing = [n for n in names if n not in s.volumes.index]
            if missing:
                raise InputError(f"subject {sid}: {s.path} has no structure {missing[0]} (field freesurfer.structures)")
    data = np.stack([s.volumes.loc[names].to_numpy(dtype=float) for s in stats])
    index = pd.Index(list(subject_ids), name="subject")
    table = pd.DataFrame(data, index=index, columns=pd.Index(names, name="structure"))
    etiv = pd.Series([s.etiv for s in stats], index=index, name=ETIV_SHORT)
    return table, etiv
