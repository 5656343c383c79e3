"""Synthetic FreeSurfer ``aseg.stats`` files for the demo cohort.

The structure list (names, SegIds, typical volumes and intensities) is the package's
``aseg_template.json``, taken from one real FreeSurfer 7 ``mri_segstats`` output. Each subject's
volumes are the template volumes scaled to the subject's eTIV, with a small age effect, ~8 %
multiplicative noise and (for patients) the planted reduction; see ``docs/demo_cohort.md``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

ETIV_MEAN = 1.5e6  # mm^3
ETIV_SD = 1.5e5
ETIV_CLIP = (1.0e6, 2.0e6)
VOLUME_NOISE_SD = 0.08  # sd of log-volume noise (~8 %)
SMALL_STRUCTURE_NOISE_SD = 0.30  # vessels: few voxels, noisy
AGE_REF = 40.0  # years; the age slopes are relative to this age
AGE_SLOPE = -0.002  # per year, tissue structures (-0.2 %/year)
AGE_SLOPE_CSF = 0.010  # per year, ventricles and CSF (+1 %/year)

_CSF_LIKE = ("Ventricle", "Vent", "CSF", "choroid-plexus")
# fmt: off
_SUBCORT_GRAY = (
    "Thalamus", "Caudate", "Putamen", "Pallidum", "Hippocampus", "Amygdala", "Accumbens-area",
    "VentralDC",
)
_VENTRICLE_CHOROID = (
    "Left-Lateral-Ventricle", "Right-Lateral-Ventricle", "Left-Inf-Lat-Vent",
    "Right-Inf-Lat-Vent", "3rd-Ventricle", "4th-Ventricle", "5th-Ventricle",
    "Left-choroid-plexus", "Right-choroid-plexus",
)
_INFRATENTORIAL = (
    "Left-Cerebellum-White-Matter", "Left-Cerebellum-Cortex", "Right-Cerebellum-White-Matter",
    "Right-Cerebellum-Cortex", "Brain-Stem", "4th-Ventricle",
)
# fmt: on


@dataclass(frozen=True)
class AsegTemplate:
    reference_etiv: float
    measures: list[dict[str, Any]]
    names: list[str]
    segids: np.ndarray
    volumes: np.ndarray  # reference-subject volumes, mm^3
    norm_mean: np.ndarray
    norm_std: np.ndarray
    norm_min: np.ndarray
    norm_max: np.ndarray

    def measure_value(self, key: str) -> float:
        return float(next(m["value"] for m in self.measures if m["key"] == key))

    def index(self, name: str) -> int:
        return self.names.index(name)


def template_path() -> Path:
    """The embedded structure table ``autospec/data/demo/aseg_template.json``."""
    return Path(str(resources.files("autospec.data.demo").joinpath("aseg_template.json")))


@functools.lru_cache(maxsize=1)
def load_template() -> AsegTemplate:
    """The embedded structure table (``autospec/data/demo/aseg_template.json``)."""
    text = template_path().read_text()
    raw = json.loads(text)
    rows = raw["structures"]

    def col(key: str) -> np.ndarray:
        return np.array([r[key] for r in rows], dtype=float)

    return AsegTemplate(
        reference_etiv=float(raw["reference_etiv_mm3"]),
        measures=raw["measures"],
        names=[r["name"] for r in rows],
        segids=np.array([r["segid"] for r in rows], dtype=int),
        volumes=col("volume_mm3"),
        norm_mean=col("norm_mean"),
        norm_std=col("norm_std"),
        norm_min=col("norm_min"),
        norm_max=col("norm_max"),
    )


def structure_names() -> list[str]:
    return list(load_template().names)


def draw_etiv(rng: np.random.Generator) -> float:
    """eTIV ~ N(1.5e6, 1.5e5) mm^3, clipped to [1.0e6, 2.0e6]."""
    return float(np.clip(rng.normal(ETIV_MEAN, ETIV_SD), *ETIV_CLIP))


def draw_volumes(rng: np.random.Generator, etiv: float, age: float, factors: dict[str, float]) -> np.ndarray:
    """Structure volumes (mm^3) of one subject, in template order.

    ``V_s = T_s * (eTIV / eTIV_ref) * (1 + a_s (age - 40)) * exp(0.08 z_s) * f_s`` with
    ``T_s`` the template volume, ``a_s`` the age slope, ``z_s ~ N(0, 1)`` and ``f_s`` the
    planted factor (``factors``; 1 for structures not listed). Structures that are 0 in the
    template (FreeSurfer reports them as 0) stay 0.
    """
    t = load_template()
    csf = np.array([any(k in n for k in _CSF_LIKE) for n in t.names])
    slope = np.where(csf, AGE_SLOPE_CSF, AGE_SLOPE)
    noise_sd = np.where(t.volumes < 50.0, SMALL_STRUCTURE_NOISE_SD, VOLUME_NOISE_SD)
    z = rng.standard_normal(len(t.names))
    planted = np.array([factors.get(n, 1.0) for n in t.names])
    age_term = np.maximum(1.0 + slope * (age - AGE_REF), 0.2)
    volumes: np.ndarray = t.volumes * (etiv / t.reference_etiv) * age_term * np.exp(noise_sd * z) * planted
    return volumes


def _global_measures(rng: np.random.Generator, etiv: float, vol: np.ndarray) -> dict[str, float]:
    """The ``# Measure`` values, consistent with the structure volumes and eTIV."""
    t = load_template()
    by_name = dict(zip(t.names, vol))
    scale = etiv / t.reference_etiv

    def around(key: str, sd: float = 0.06) -> float:
        return t.measure_value(key) * scale * float(np.exp(sd * rng.standard_normal()))

    lh_ctx, rh_ctx = around("lhCortex"), around("rhCortex")
    lh_wm, rh_wm = around("lhCerebralWhiteMatter"), around("rhCerebralWhiteMatter")
    subcort = sum(v for n, v in by_name.items() if any(n.endswith(k) for k in _SUBCORT_GRAY))
    cortex, wm = lh_ctx + rh_ctx, lh_wm + rh_wm
    cereb_ctx = by_name["Left-Cerebellum-Cortex"] + by_name["Right-Cerebellum-Cortex"]
    vent = sum(by_name[n] for n in _VENTRICLE_CHOROID)
    brainseg = cortex + wm + float(sum(v for n, v in by_name.items() if n != "CSF"))
    supra = brainseg - sum(by_name[n] for n in _INFRATENTORIAL)
    mask = etiv * float(rng.uniform(1.10, 1.25))
    lh_holes, rh_holes = (int(h) for h in rng.poisson(25, size=2))
    return {
        "BrainSeg": brainseg,
        "BrainSegNotVent": brainseg - vent,
        "VentricleChoroidVol": vent,
        "lhCortex": lh_ctx,
        "rhCortex": rh_ctx,
        "Cortex": cortex,
        "lhCerebralWhiteMatter": lh_wm,
        "rhCerebralWhiteMatter": rh_wm,
        "CerebralWhiteMatter": wm,
        "SubCortGray": subcort,
        "TotalGray": cortex + subcort + cereb_ctx,
        "SupraTentorial": supra,
        "SupraTentorialNotVent": supra - (vent - by_name["4th-Ventricle"]),
        "Mask": mask,
        "BrainSegVol-to-eTIV": brainseg / etiv,
        "MaskVol-to-eTIV": mask / etiv,
        "lhSurfaceHoles": lh_holes,
        "rhSurfaceHoles": rh_holes,
        "SurfaceHoles": lh_holes + rh_holes,
        "EstimatedTotalIntraCranialVol": etiv,
    }


def _fmt_measure(m: dict[str, Any], value: float) -> str:
    v = f"{int(value)}" if m["unit"] == "unitless" and "Holes" in m["key"] else f"{value:.6f}"
    return f"# Measure {m['key']}, {m['short']}, {m['description']}, {v}, {m['unit']}"


_TABLE_COLS = [
    ("Index", "Index", "NA"),
    ("SegId", "Segmentation Id", "NA"),
    ("NVoxels", "Number of Voxels", "unitless"),
    ("Volume_mm3", "Volume", "mm^3"),
    ("StructName", "Structure Name", "NA"),
    ("normMean", "Intensity normMean", "MR"),
    ("normStdDev", "Itensity normStdDev", "MR"),  # sic: FreeSurfer's own spelling
    ("normMin", "Intensity normMin", "MR"),
    ("normMax", "Intensity normMax", "MR"),
    ("normRange", "Intensity normRange", "MR"),
]


def format_row(index: int, segid: int, nvox: int, vol: float, name: str, *, stats: tuple[float, ...]) -> str:
    """One table row in ``mri_segstats``' fixed-width layout."""
    mean, sd, lo, hi = stats
    return (
        f"{index:3d} {segid:3d} {nvox:9d} {vol:10.1f}  {name:<30s} "
        f"{mean:10.4f} {sd:10.4f} {lo:10.4f} {hi:10.4f} {hi - lo:10.4f} "
    )


def aseg_stats_text(rng: np.random.Generator, subject_id: str, etiv: float, vol: np.ndarray) -> str:
    """The full text of one subject's ``aseg.stats`` (FreeSurfer 6/7 layout, no timestamps)."""
    t = load_template()
    measures = _global_measures(rng, etiv, vol)
    lines = [
        "# Title Segmentation Statistics ",
        "# ",
        "# generating_program mri_segstats",
        "# cvs_version 7.0.0",
        "# cmdline mri_segstats --seed 1234 --seg mri/aseg.mgz --sum stats/aseg.stats --pv "
        "mri/norm.mgz --empty --brainmask mri/brainmask.mgz --brain-vol-from-seg --excludeid 0 "
        "--excl-ctxgmwm --supratent --subcortgray --in mri/norm.mgz --in-intensity-name norm "
        "--in-intensity-units MR --etiv --surf-wm-vol --surf-ctx-vol --totalgray --euler "
        f"--ctab $FREESURFER_HOME/ASegStatsLUT.txt --subject {subject_id} ",
        "# sysname  Linux",
        "# hostname autospec-synthetic",
        "# machine  x86_64",
        "# user     autospec",
        "# anatomy_type volume",
        "# synthetic AutoSpec demo cohort: values are simulated, not measured",
        "# ",
        "# SUBJECTS_DIR freesurfer",
        f"# subjectname {subject_id}",
        "# BrainVolStatsFixed-NotNeeded because voxelvolume=1mm3",
    ]
    lines += [_fmt_measure(m, measures[m["key"]]) for m in t.measures]
    lines += [
        "# SegVolFile mri/aseg.mgz ",
        "# ColorTable $FREESURFER_HOME/ASegStatsLUT.txt ",
        "# InVolFile  mri/norm.mgz ",
        "# InVolFrame 0 ",
        "# PVVolFile  mri/norm.mgz ",
        "# Excluding Cortical Gray and White Matter",
        "# ExcludeSegId 0 2 3 41 42 ",
        "# VoxelVolume_mm3 1 ",
    ]
    for i, (header, field, unit) in enumerate(_TABLE_COLS, start=1):
        lines += [
            f"# TableCol {i:2d} ColHeader {header}",
            f"# TableCol {i:2d} FieldName {field}",
            f"# TableCol {i:2d} Units     {unit}",
        ]
    lines += [
        f"# NRows {len(t.names)} ",
        f"# NTableCols {len(_TABLE_COLS)} ",
        "# ColHeaders  " + " ".join(h for h, _, _ in _TABLE_COLS) + "  ",
    ]
    # partial-volume correction makes NVoxels differ from Volume_mm3 by a few percent
    nvox = np.rint(vol * np.exp(0.03 * rng.standard_normal(len(vol)))).astype(int)
    jitter = rng.standard_normal((len(vol), 4))
    for i, name in enumerate(t.names):
        if vol[i] <= 0.0:
            lines.append(format_row(i + 1, int(t.segids[i]), 0, 0.0, name, stats=(0.0, 0.0, 0.0, 0.0)))
            continue
        mean = t.norm_mean[i] + 2.0 * jitter[i, 0]
        sd = t.norm_std[i] * float(np.exp(0.05 * jitter[i, 1]))
        lo = max(0.0, float(np.rint(t.norm_min[i] + 4.0 * jitter[i, 2])))
        hi = max(lo + 1.0, float(np.rint(t.norm_max[i] + 4.0 * jitter[i, 3])))
        lines.append(format_row(i + 1, int(t.segids[i]), int(nvox[i]), vol[i], name, stats=(mean, sd, lo, hi)))
    return "\n".join(lines) + "\n"
