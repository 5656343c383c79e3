"""The embedded default cohort: a deterministic synthetic COBRE-like cohort in real formats.

:func:`make_demo_cohort` writes a phenotype CSV, a FreeSurfer SUBJECTS_DIR (``aseg.stats`` per
subject) and a GIFT output directory exactly as GIFT writes it (parameter MAT-files with the
subjects' functional input paths and the TR, time courses and spatial maps carrying the
functional header: voxel size 3 mm, TR 2 s), with a planted schizophrenia-vs-control effect of
known size described in ``planted_effect.json``. The same seed gives byte-identical data files.
Details and formulas: ``docs/demo_cohort.md``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ...errors import InputError
from ...manifest import build_manifest, file_record, write_manifest
from ..neuromark import N_COMPONENTS
from . import aseg_stats as aseg
from . import ica_signals as ica
from .gift_output import (
    GiftSubject,
    functional_header,
    write_mean_outputs,
    write_parameter_files,
    write_subject_outputs,
)
from .planted import (
    COUPLING_CHANGE,
    COUPLING_DOMAINS,
    MAP_CHANGE,
    MAP_COMPONENTS,
    VOLUME_CHANGE,
    VOLUME_STRUCTURES,
    planted_description,
)

PREFIX = "demo"
MAT_VERSION = "7.3"  # GIFT's default (ENFORCE_MAT_FILE_VER = '-v7.3')
#: where the (imaginary) preprocessed functional inputs of GIFT lived; BIDS names
INPUT_ROOT = "/data/cobre/derivatives/fmriprep"
GIFT_RUN_DIR = "/data/cobre/derivatives/gift"  # where GIFT ran (recorded in sesInfo)
ID_REGEX = "sub-([^/_]+)"
N_SZ, N_HC = 72, 75  # COBRE raw release
N_SZ_SMALL, N_HC_SMALL = 12, 12
GRID_MM, GRID_MM_SMALL = 3.0, 6.0
N_DISENROLLED = 2
EFFECT_MAX = 4.0

# demographics: the SAME distribution for both groups, so effect=0 is a true null
AGE_MEAN, AGE_SD, AGE_RANGE = 38.0, 12.0, (18, 65)
P_MALE = 0.75
HANDEDNESS = (("Right", 0.85), ("Left", 0.10), ("Both", 0.05))
DSM_CODES = ("295.30", "295.10", "295.90", "295.60", "295.70")  # paranoid, disorg., undiff., ...

# independent random streams: stream id -> purpose (per-subject streams also key on the index)
_S_PHENO, _S_ASEG, _S_TC, _S_MAPS = 1, 2, 3, 4
_WORKERS = max(1, min(4, os.cpu_count() or 1))

_PHENO_COLS = ["", "Current Age", "Gender", "Handedness", "Subject Type", "Diagnosis"]


def _rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream, index]))


def _phenotype(seed: int, n_sz: int, n_hc: int) -> tuple[list[dict[str, str]], list[str]]:
    """Phenotype rows (incl. Disenrolled), sorted by ID, and the enrolled IDs in that order."""
    rng = _rng(seed, _S_PHENO)
    n = n_sz + n_hc
    numbers = np.sort(rng.choice(np.arange(1, 40000), size=n + N_DISENROLLED, replace=False))
    ids = [f"A{k:08d}" for k in numbers]
    disenrolled = set(rng.choice(n + N_DISENROLLED, size=N_DISENROLLED, replace=False).tolist())
    enrolled = [sid for i, sid in enumerate(ids) if i not in disenrolled]
    is_sz = np.zeros(n, dtype=bool)
    is_sz[rng.permutation(n)[:n_sz]] = True
    ages = np.clip(np.rint(rng.normal(AGE_MEAN, AGE_SD, size=n)), *AGE_RANGE).astype(int)
    male = rng.random(n) < P_MALE
    hand = rng.choice([h for h, _ in HANDEDNESS], size=n, p=[p for _, p in HANDEDNESS])
    dsm = rng.choice(DSM_CODES, size=n, p=[0.6, 0.1, 0.15, 0.05, 0.1])
    info = {
        sid: {
            "": sid,
            "Current Age": str(ages[k]),
            "Gender": "Male" if male[k] else "Female",
            "Handedness": str(hand[k]),
            "Subject Type": "Patient" if is_sz[k] else "Control",
            "Diagnosis": str(dsm[k]) if is_sz[k] else "None",
        }
        for k, sid in enumerate(enrolled)
    }
    # COBRE marks subjects who left the study with "Disenrolled" in every column
    rows = [info.get(sid) or {"": sid} | dict.fromkeys(_PHENO_COLS[1:], "Disenrolled") for sid in ids]
    return rows, enrolled


def _csv_text(rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=_PHENO_COLS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def cohort_config(name: str = "demo") -> dict[str, Any]:
    """The cohort-config block for the demo cohort (paths relative to the cohort root)."""
    return {
        "cohorts": {
            name: {
                "phenotype": "phenotype.csv",
                "phenotype_format": "cobre",
                "id_column": None,
                "groups": {
                    "by": [{"column": "Subject Type", "map": {"Patient": "SZ", "Control": "HC"}}],
                    "keep": None,
                },
                "label": None,
                "exclude": [],
                "freesurfer": {
                    "subjects_dir": "freesurfer",
                    "etiv_normalize": True,
                    "zscore": True,
                    "structures": None,
                },
                "gift": {
                    "dir": "gift",
                    "prefix": PREFIX,
                    # subjects, sessions and TR come from GIFT's parameter file
                    "subjects": None,
                    "subject_id_regex": ID_REGEX,
                    "tr": None,
                    "n_components": N_COMPONENTS,
                    "components": None,
                    "timecourses": {
                        "detrend": True,
                        "low_pass": 0.15,
                        "high_pass": 0.01,
                        "standardize": "zscore_sample",
                        "length_policy": "crop",
                        "length": None,
                    },
                    "spatial_maps": {"reduce": "max", "target_shape": None, "mask": None},
                },
            }
        }
    }


def input_file(sid: str) -> str:
    """The functional input path GIFT recorded for subject ``sid`` (BIDS: sub-<ID>)."""
    return f"{INPUT_ROOT}/sub-{sid}/func/sub-{sid}_task-rest_space-MNI152_desc-preproc_bold.nii"


def gift_subject(sid: str, grid: ica.Grid) -> GiftSubject:
    """Subject ``sid``'s GIFT inputs: one session of N_TIMEPOINTS volumes on the map grid."""
    header = functional_header(grid.affine, grid.shape, ica.N_TIMEPOINTS, ica.TR)
    return GiftSubject([input_file(sid)], [ica.N_TIMEPOINTS], header)


def _write_cohort(root: Path, seed: int, effect: float, *, n_sz: int, n_hc: int, small: bool, grid_mm: float) -> None:
    rows, enrolled = _phenotype(seed, n_sz, n_hc)
    (root / "phenotype.csv").write_text(_csv_text(rows))
    gdir = root / "gift"
    gdir.mkdir()
    grid = ica.make_grid(grid_mm)
    ica.brain_mask(grid_mm), ica.component_layout(), ica.inside_index(grid_mm)  # warm caches
    write_parameter_files(
        gdir, PREFIX, [gift_subject(s, grid) for s in enrolled], ica.TR, MAT_VERSION, recorded_dir=GIFT_RUN_DIR
    )
    write_one = _subject_writer(root, grid, seed=seed, effect=effect, phenotype={r[""]: r for r in rows})
    mean_maps, mean_tc = _write_subjects(write_one, enrolled, grid)
    write_mean_outputs(gdir, PREFIX, gift_subject(enrolled[0], grid).header, mean_maps, mean_tc)

    (root / "cohort.yaml").write_text(
        "# Cohort config for the synthetic demo cohort (autospec make-demo-cohort); paths are\n"
        "# relative to this file. Use: autospec preprocess --cohort-config cohort.yaml "
        "--cohort demo\n# gift/ is laid out as GIFT writes it: subjects, sessions and TR come "
        "from gift/demo_ica_parameter_info.mat\n" + yaml.safe_dump(cohort_config(), sort_keys=False)
    )
    planted = planted_description(seed, effect, n_sz=n_sz, n_hc=n_hc, small=small, grid_mm=grid_mm)
    (root / "planted_effect.json").write_text(json.dumps(planted, indent=2) + "\n")


_SubjectWriter = Callable[[int, str], tuple[np.ndarray, np.ndarray]]


def _subject_writer(
    root: Path, grid: ica.Grid, *, seed: int, effect: float, phenotype: dict[str, dict[str, str]]
) -> _SubjectWriter:
    """``write(k, sid)``: GIFT subject ``k``'s aseg.stats and GIFT files; returns (maps, time courses)."""
    vol_factor = dict.fromkeys(VOLUME_STRUCTURES, 1.0 + VOLUME_CHANGE * effect)
    rho_sz = min(ica.BASE_COUPLING + COUPLING_CHANGE * effect, ica.COUPLING_MAX)
    coupling_sz = dict.fromkeys(COUPLING_DOMAINS, rho_sz)
    map_factor_sz = np.ones(N_COMPONENTS)
    map_factor_sz[[c - 1 for c in MAP_COMPONENTS]] = 1.0 + MAP_CHANGE * effect

    def write(k: int, sid: str) -> tuple[np.ndarray, np.ndarray]:
        sz = phenotype[sid]["Subject Type"] == "Patient"
        age = float(phenotype[sid]["Current Age"])
        r = _rng(seed, _S_ASEG, k)
        etiv = aseg.draw_etiv(r)
        vol = aseg.draw_volumes(r, etiv, age, vol_factor if sz else {})
        stats = root / "freesurfer" / sid / "stats"
        stats.mkdir(parents=True)
        (stats / "aseg.stats").write_text(aseg.aseg_stats_text(r, sid, etiv, vol))

        subject = gift_subject(sid, grid)
        subject.timecourses = [ica.time_courses(_rng(seed, _S_TC, k), coupling_sz if sz else {})]
        factor = map_factor_sz if sz else np.ones(N_COMPONENTS)
        subject.maps = [ica.spatial_maps(_rng(seed, _S_MAPS, k), grid, factor)]
        write_subject_outputs(root / "gift", PREFIX, k, subject)
        return subject.maps[0], subject.timecourses[0]

    return write


def _write_subjects(write_one: _SubjectWriter, enrolled: list[str], grid: ica.Grid) -> tuple[np.ndarray, np.ndarray]:
    """Write every subject (``write_one``, in threads); the group-mean maps and time courses."""
    # (C, Z, Y, X): the memory order of the (X, Y, Z, C) Fortran-ordered maps
    map_sum = np.zeros((N_COMPONENTS,) + grid.shape[::-1], dtype=np.float64)
    tc_sum = np.zeros((ica.N_TIMEPOINTS, N_COMPONENTS), dtype=np.float64)
    # every subject has its own random streams, so threads do not change any byte; results
    # are summed in subject order (float sums depend on order) and at most 2*workers are alive
    jobs = list(enumerate(enrolled, start=1))
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        for i in range(0, len(jobs), 2 * _WORKERS):
            futures = [pool.submit(write_one, k, sid) for k, sid in jobs[i : i + 2 * _WORKERS]]
            for fut in futures:
                maps, tc = fut.result()
                map_sum += maps.T
                tc_sum += tc
    mean_maps = (map_sum / len(enrolled)).astype(np.float32).T
    mean_tc = (tc_sum / len(enrolled)).astype(np.float32)
    return mean_maps, mean_tc


def cohort_files(root: os.PathLike[str] | str) -> list[Path]:
    """Every file of a cohort directory except ``manifest.json``, sorted (relative paths)."""
    r = Path(root)
    files = (p.relative_to(r) for p in r.rglob("*") if p.is_file())
    return sorted(p for p in files if p != Path("manifest.json"))


def make_demo_cohort(
    out: os.PathLike[str] | str,
    *,
    seed: int = 0,
    effect: float = 1.0,
    n_sz: int | None = None,
    n_hc: int | None = None,
    small: bool = False,
    force: bool = False,
    grid_mm: float | None = None,
) -> Path:
    """Write the synthetic demo cohort to ``out`` and return its path.

    Parameters
    ----------
    out : path
        Cohort root; must not exist or be an empty directory (``force=True`` replaces it).
    seed : int
        Same seed -> byte-identical files (``manifest.json`` alone differs: time, host).
    effect : float
        Size of the planted SZ-vs-HC effect, 0 (null mode: both groups from one
        distribution) to 4; see ``planted_effect.json``.
    n_sz, n_hc : int, optional
        Group sizes; default 72 and 75 (COBRE), or 12 and 12 when ``small``.
    small : bool
        Tiny test cohort: 6 mm map grid instead of 3 mm and the small default group sizes.
    grid_mm : float, optional
        Override the spatial-map voxel size (mm).

    The cohort is built in a temporary directory beside ``out`` and renamed into place, so an
    error leaves no partial cohort.
    """
    out = Path(out)
    n_sz = (N_SZ_SMALL if small else N_SZ) if n_sz is None else int(n_sz)
    n_hc = (N_HC_SMALL if small else N_HC) if n_hc is None else int(n_hc)
    grid_mm = float(grid_mm if grid_mm is not None else (GRID_MM_SMALL if small else GRID_MM))
    effect, seed = float(effect), int(seed)
    _check_demo_arguments(out, seed=seed, effect=effect, n_sz=n_sz, n_hc=n_hc, grid_mm=grid_mm, force=force)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        _write_cohort(tmp, seed, effect, n_sz=n_sz, n_hc=n_hc, small=small, grid_mm=grid_mm)
        params = {
            "seed": seed,
            "effect": effect,
            "n_sz": n_sz,
            "n_hc": n_hc,
            "small": small,
            "grid_mm": grid_mm,
            "prefix": PREFIX,
            "mat_version": MAT_VERSION,
        }
        _write_demo_manifest(tmp, params)
        os.chmod(tmp, 0o755)  # mkdtemp made it 0700
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _check_demo_arguments(
    out: Path, *, seed: int, effect: float, n_sz: int, n_hc: int, grid_mm: float, force: bool
) -> None:
    if not 0.0 <= effect <= EFFECT_MAX:
        raise InputError(f"effect: {effect} is outside [0, {EFFECT_MAX}]")
    if n_sz < 2 or n_hc < 2:
        raise InputError(f"n_sz/n_hc: need at least 2 subjects per group (got {n_sz}, {n_hc})")
    if n_sz + n_hc > 999:
        raise InputError(f"n_sz + n_hc = {n_sz + n_hc}: GIFT's 3-digit subject index allows 999")
    if not 1.0 <= grid_mm <= 16.0:
        raise InputError(f"grid_mm: {grid_mm} is outside [1, 16] mm")
    if seed < 0:
        raise InputError(f"seed: {seed} must be >= 0")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise InputError(f"{out}: directory exists and is not empty (use --force to replace it)")


def _write_demo_manifest(root: Path, params: dict[str, Any]) -> None:
    """``root/manifest.json``: every file of the cohort, hashed, with paths relative to ``root``."""
    manifest = build_manifest("make-demo-cohort", inputs=[aseg.template_path()], params=params)
    files = cohort_files(root)
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:  # hashing 5 GB: use the cores
        records = list(pool.map(file_record, [root / p for p in files]))
    for rec, rel in zip(records, files):  # paths relative to the cohort root
        rec["path"] = rel.as_posix()
    manifest["outputs"] = records
    write_manifest(root / "manifest.json", manifest)
    os.chmod(root / "manifest.json", 0o644)


def _replace_dir(new: Path, out: Path) -> None:
    """Rename ``new`` to ``out``; an existing ``out`` is moved aside first, then removed."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        os.replace(out, old / "d")
    try:
        os.replace(new, out)
    except BaseException:
        if old is not None:
            os.replace(old / "d", out)
        raise
    finally:
        if old is not None:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(old)
