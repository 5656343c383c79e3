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

import csv
import io
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .textfile import list_directory, read_text

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
#: global ``# Measure`` names (keys and short names): the columns of an asegstats2table table
#: that are not structures
# a word list, as FreeSurfer names them, reads best as one block
GLOBAL_MEASURES = frozenset(
    """BrainSeg BrainSegVol BrainSegNotVent BrainSegVolNotVent BrainSegNotVentSurf
    BrainSegVolNotVentSurf VentricleChoroidVol lhCortex lhCortexVol rhCortex rhCortexVol Cortex
    CortexVol lhCerebralWhiteMatter lhCerebralWhiteMatterVol rhCerebralWhiteMatter
    rhCerebralWhiteMatterVol CerebralWhiteMatter CerebralWhiteMatterVol SubCortGray SubCortGrayVol
    TotalGray TotalGrayVol SupraTentorial SupraTentorialVol SupraTentorialNotVent
    SupraTentorialVolNotVent SupraTentorialNotVentVox SupraTentorialVolNotVentVox Mask MaskVol
    BrainSegVol-to-eTIV MaskVol-to-eTIV lhSurfaceHoles rhSurfaceHoles SurfaceHoles
    EstimatedTotalIntraCranialVol eTIV IntraCranialVol ICV""".split()  # noqa: SIM905
)
#: SUBJECTS_DIR entries that are templates, not subjects
TEMPLATE_PREFIXES = ("fsaverage", "lh.", "rh.", "cvs_avg35")
LONG_MARK = ".long."


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


def read_aseg_stats(path: os.PathLike[str] | str) -> AsegStats:
    """Read one FreeSurfer ``aseg.stats`` file.

    Raises
    ------
    InputError
        Missing file, no ``# ColHeaders`` line, no eTIV (or legacy ICV) measure, a row with the
        wrong number of columns, a non-numeric or non-finite value, duplicate structure names.
    """
    p = Path(path)
    measures, columns, rows = _scan_aseg_lines(read_text(p, "aseg.stats file"), p)
    for needed in ("StructName", "Volume_mm3"):
        if needed not in columns:
            raise InputError(f"{p}: '# ColHeaders' has no {needed} column")
    if not rows:
        raise InputError(f"{p}: no structure rows after '# ColHeaders'")
    _settle_etiv(measures, p)
    table = _numeric_structure_table(rows, columns, p)
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


def _scan_aseg_lines(text: str, p: Path) -> tuple[dict[str, tuple[float, str]], list[str], list[list[str]]]:
    """The ``# Measure`` values, the ``# ColHeaders`` names and the split data rows of a file."""
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
    return measures, columns, rows


def _settle_etiv(measures: dict[str, tuple[float, str]], p: Path) -> None:
    """Store eTIV under both its key and short name (a legacy ICV stands in); it must be > 0."""
    if ETIV_KEY in measures or ETIV_SHORT in measures:
        measures[ETIV_KEY] = measures[ETIV_SHORT] = measures[ETIV_KEY if ETIV_KEY in measures else ETIV_SHORT]
    else:
        legacy = next((k for k in _LEGACY_ICV_KEYS if k in measures), None)
        if legacy is None:
            raise InputError(f"{p}: no eTIV measure ('# Measure {ETIV_KEY}, {ETIV_SHORT}, ...' line missing)")
        log.info("%s: using legacy IntraCranialVol (ICV) measure as eTIV", p)
        measures[ETIV_KEY] = measures[ETIV_SHORT] = measures[legacy]
    if measures[ETIV_SHORT][0] <= 0:
        raise InputError(f"{p}: eTIV is {measures[ETIV_SHORT][0]}, must be positive")


def _numeric_structure_table(rows: list[list[str]], columns: list[str], p: Path) -> pd.DataFrame:
    """The structure rows as a table, every column but ``StructName`` a finite number."""
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
    return table


def read_asegstats2table(path: os.PathLike[str] | str, sep: str = "\t") -> pd.DataFrame:
    """Read the table written by FreeSurfer's ``asegstats2table`` (one row per subject).

    The top-left cell is ``Measure:volume``; the result is indexed by subject (str) with one
    float column per structure or measure (FreeSurfer 5.3 names mapped to current ones).
    """
    p = Path(path)
    text = read_text(p, "asegstats2table file")
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, engine="python")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, csv.Error) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{p}: unreadable asegstats2table file ({first})") from None
    if df.columns.duplicated().any():
        raise InputError(f"{p}: column {df.columns[df.columns.duplicated()][0]!r} appears twice")
    if df.columns.empty or df.columns[0].strip() != "Measure:volume":
        first = df.columns[0] if len(df.columns) else ""
        raise InputError(f"{p}: top-left cell is {first!r}, expected 'Measure:volume'")
    df = df.rename(columns=lambda c: rename_structure(str(c).strip()))
    if df.shape[1] < 2:
        raise InputError(f"{p}: asegstats2table table has no structure columns (separator {sep!r}?)")
    if df.columns.duplicated().any():
        raise InputError(f"{p}: column {df.columns[df.columns.duplicated()][0]!r} appears twice")
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


def aseg_stats_path(subjects_dir: os.PathLike[str] | str, subject: str) -> Path:
    """``<SUBJECTS_DIR>/<subject>/stats/aseg.stats``."""
    return Path(subjects_dir) / subject / "stats" / "aseg.stats"


def subjects_dir_entries(subjects_dir: os.PathLike[str] | str, longitudinal: str = "skip") -> dict[str, Path]:
    """Subject -> ``aseg.stats`` of every subject directory of a SUBJECTS_DIR that has one.

    Templates (``fsaverage*``, ``lh.*``, ``rh.*``, ``cvs_avg35*``) are not subjects.
    ``longitudinal="skip"``: ``<tp>.long.<base>`` directories and the ``<base>`` templates they
    name are left out (cross-sectional runs only). ``"only"``: only ``.long.`` directories,
    each under its time-point ID ``<tp>``.
    """
    sdir = Path(subjects_dir)
    names = list_directory(sdir, "freesurfer.subjects_dir")
    bases = {n.split(LONG_MARK, 1)[1] for n in names if LONG_MARK in n}
    found: dict[str, Path] = {}
    for name in names:
        if name.startswith(TEMPLATE_PREFIXES) or not (sdir / name).is_dir():
            continue
        is_long = LONG_MARK in name
        if longitudinal == "only":
            if not is_long:
                continue
            sid = name.split(LONG_MARK, 1)[0]
        else:
            if is_long or name in bases:
                continue
            sid = name
        f = aseg_stats_path(sdir, name)
        if f.is_file():
            if sid in found:
                raise InputError(f"{sdir}: two longitudinal directories for time point {sid}")
            found[sid] = f
    return found


def _common_structures(volumes: dict[str, pd.Series], where: str, policy: str, source_of: dict[str, str]) -> list[str]:
    first = next(iter(volumes.values()))
    common = set.intersection(*(set(v.index) for v in volumes.values()))
    names = [n for n in first.index if n in common]
    dropped = sorted(set().union(*(set(v.index) for v in volumes.values())) - common)
    if dropped:
        lacking = {n: [s for s, v in volumes.items() if n not in v.index] for n in dropped}
        n, subs = next(iter(lacking.items()))
        detail = f"{n} missing in {len(subs)} of {len(volumes)} subjects (e.g. {subs[0]}: {source_of[subs[0]]})"
        if policy == "error":
            raise InputError(f"{where}: structure {detail} (freesurfer.missing_structures: error)")
        log.warning(
            "%s: %d structure(s) not present for every subject, dropped for all: %s; %s",
            where,
            len(dropped),
            ", ".join(dropped),
            detail,
        )
    if not names:
        raise InputError(f"{where}: no structure is present in every subject's data")
    return names


def volumes_matrix(
    volumes: dict[str, pd.Series],
    etiv: dict[str, float],
    structures: Iterable[str] | None,
    where: str,
    *,
    missing_policy: str = "drop",
    source_of: dict[str, str] | None = None,
) -> tuple[pd.DataFrame, pd.Series]:
    """Volumes (mm^3) subject x structure, in ``volumes``' order, and eTIV per subject.

    ``structures=None`` takes every structure present for all subjects (first subject's
    order); one missing in some subjects is dropped for all with a WARNING naming it and the
    count (``missing_policy="drop"``) or is an error (``"error"``). A requested structure that
    a subject lacks is always an error.
    """
    ids = list(volumes)
    source_of = source_of or dict.fromkeys(ids, where)
    if structures is None:
        names = _common_structures(volumes, where, missing_policy, source_of)
    else:
        names = [rename_structure(n) for n in structures]
        for sid, v in volumes.items():
            missing = [n for n in names if n not in v.index]
            if missing:
                raise InputError(
                    f"subject {sid}: {source_of[sid]} has no structure {missing[0]} (field freesurfer.structures)"
                )
    data = np.stack([volumes[s].loc[names].to_numpy(dtype=float) for s in ids])
    index = pd.Index(ids, name="subject")
    table = pd.DataFrame(data, index=index, columns=pd.Index(names, name="structure"))
    return table, pd.Series([etiv[s] for s in ids], index=index, name=ETIV_SHORT)


def volumes_table(
    subjects_dir: os.PathLike[str] | str,
    subject_ids: Sequence[str],
    structures: Iterable[str] | None = None,
    missing_policy: str = "drop",
    files: dict[str, Path] | None = None,
) -> tuple[pd.DataFrame, pd.Series]:
    """Volumes of ``subject_ids`` read from their ``aseg.stats`` (see :func:`volumes_matrix`)."""
    sdir = Path(subjects_dir)
    if not subject_ids:
        raise InputError(f"{sdir}: no subjects requested")
    vols, etiv, source = {}, {}, {}
    for sid in subject_ids:
        f = (files or {}).get(sid) or aseg_stats_path(sdir, sid)
        if not f.is_file():
            raise InputError(f"subject {sid}: {f} not found")
        st = read_aseg_stats(f)
        vols[sid], etiv[sid], source[sid] = st.volumes, st.etiv, str(f)
    return volumes_matrix(vols, etiv, structures, str(sdir), missing_policy=missing_policy, source_of=source)


def table_volumes(
    path: os.PathLike[str] | str,
    subject_ids: Sequence[str],
    structures: Iterable[str] | None = None,
    sep: str = "\t",
    need_etiv: bool = True,
) -> tuple[pd.DataFrame, pd.Series]:
    """Volumes of ``subject_ids`` from an asegstats2table table, and its eTIV column.

    Structure columns are those that are not global measures (:data:`GLOBAL_MEASURES`).
    """
    p = Path(path)
    df = read_asegstats2table(p, sep)
    etiv_col = next((c for c in (ETIV_KEY, ETIV_SHORT, *_LEGACY_ICV_KEYS) if c in df.columns), None)
    if etiv_col is None:
        if need_etiv:
            raise InputError(
                f"{p}: no {ETIV_KEY} (eTIV) column; run asegstats2table with --etiv, or set etiv_normalize: false"
            )
        etiv = pd.Series(np.nan, index=df.index)
    else:
        etiv = df[etiv_col]
        if need_etiv and (etiv <= 0).any():
            bad = etiv.index[int(np.flatnonzero((etiv <= 0).to_numpy())[0])]
            raise InputError(f"{p}: subject {bad}: {etiv_col} is {etiv[bad]}, must be positive")
    cols = [c for c in df.columns if c not in GLOBAL_MEASURES]
    if not cols:
        raise InputError(f"{p}: no structure columns (only global measures)")
    missing = [s for s in subject_ids if s not in df.index]
    if missing:
        raise InputError(f"subject {missing[0]}: no row in {p}")
    vols = {s: df.loc[s, cols].astype(float) for s in subject_ids}
    return volumes_matrix(vols, {s: float(etiv[s]) for s in subject_ids}, structures, str(p), missing_policy="error")
