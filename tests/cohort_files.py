"""A small test cohort in the real layout (a GIFT output directory written as GIFT writes it,
by the same generator as the demo cohort), and the preprocess-CLI helpers the cohort tests
share (test_preprocess, test_cohort_config, test_freesurfer, test_phenotype, test_gift)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from autospec.cli import main
from autospec.data.demo.gift_output import GiftSubject, functional_header, timecourse_image, write_gift_output

TR = 2.0
VOXEL_MM = 3.0  # != TR: GIFT's time-course pixdim is the voxel size
AFFINE = np.diag([VOXEL_MM, VOXEL_MM, VOXEL_MM, 1.0])
N_T, N_C, GRID = 40, 53, (5, 6, 4)
IDS = [f"A{n:08d}" for n in (11, 12, 13, 14, 15, 16)]
TYPES = ["Patient", "Control", "Patient", "Control", "Patient", "Control"]
SEXES = ["Male", "Male", "Female", "Female", "Male", "Female"]


def real_aseg(shared_data: Path) -> Path:
    found = sorted(shared_data.glob("freesurfer/**/aseg.stats"))
    if not found:
        pytest.skip("no real aseg.stats under shared data")
    return found[0]


def write_aseg(template: Path, dest: Path, factor: float) -> None:
    """Copy a real aseg.stats with every Volume_mm3 multiplied by ``factor``."""
    out, cols = [], None
    for line in template.read_text().splitlines():
        if line.startswith("# ColHeaders"):
            cols = line.split()[2:]
        elif cols and line.strip() and not line.startswith("#"):
            f = line.split()
            i = cols.index("Volume_mm3")
            f[i] = f"{float(f[i]) * factor:.1f}"
            line = "  " + "  ".join(f)
        out.append(line)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("\n".join(out) + "\n")


def func_header(n_volumes: int = N_T):
    """The functional header GIFT copies into its outputs (3 mm voxels, TR 2 s)."""
    return functional_header(AFFINE, GRID, n_volumes, TR)


def input_path(sid: str, session: int = 1) -> str:
    return f"/data/study/sub-{sid}/ses-{session}/func/sub-{sid}_ses-{session}_task-rest_bold.nii"


def write_timecourses(path: Path, data: np.ndarray) -> None:
    """Replace one GIFT time-course file (GIFT's header: functional, only dim changed)."""
    nib.save(timecourse_image(np.asarray(data), func_header()), path)


def write_maps(path: Path, data: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), AFFINE), path)


def gift_subjects(ids, rng, n_sessions: int = 1, n_t: int = N_T) -> list[GiftSubject]:
    t = np.arange(n_t) * TR
    out = []
    for sid in ids:
        tcs = [rng.normal(size=(n_t, N_C)) + np.sin(2 * np.pi * 0.05 * t)[:, None] for _ in range(n_sessions)]
        maps = [rng.normal(size=(*GRID, N_C)) for _ in range(n_sessions)]
        files = [input_path(sid, s + 1) for s in range(n_sessions)]
        out.append(GiftSubject(files, [n_t] * n_sessions, func_header(n_t), tcs, maps))
    return out


def write_cohort(
    root: Path,
    aseg_template: Path | None = None,
    name: str = "demo",
    *,
    mat_version: str = "7.3",
    ext: str = ".nii",
    n_sessions: int = 1,
    tr: float | list[float] | None = TR,
    gift_ids: list[str] | None = None,
    **overrides,
) -> Path:
    """A 6-subject cohort (3 SZ, 3 HC) in the real layout; returns the config path.

    GIFT output directory ``gift/`` written as GIFT writes it (parameter MAT-files ``mat_version``
    with BIDS input paths and ``tr``, files ``ext``, ``n_sessions`` sessions); no subjects.txt.
    Time courses (40, 53) with a planted 0.05 Hz rhythm, maps (5, 6, 4, 53); aseg.stats copied
    from ``aseg_template`` with perturbed volumes (no freesurfer block when it is None). A
    Disenrolled row without data is included (``gift_ids`` may list it: GIFT's subject order,
    default IDS). ``overrides`` update the cohort block.
    """
    rng = np.random.default_rng(7)
    root.mkdir(parents=True, exist_ok=True)
    rows = [",Current Age,Gender,Handedness,Subject Type,Diagnosis"]
    for sid, typ, sex in zip(IDS, TYPES, SEXES):
        diag = "295.30" if typ == "Patient" else "None"
        rows.append(f"{sid},{rng.integers(18, 60)},{sex},Right,{typ},{diag}")
    rows.append("A00000099,33,Male,Right,Disenrolled,Disenrolled")
    (root / "phenotype.csv").write_text("\n".join(rows) + "\n")

    write_gift_output(
        root / "gift", "demo", gift_subjects(gift_ids or IDS, rng, n_sessions), tr, mat_version=mat_version, ext=ext
    )
    block = {
        "phenotype": "phenotype.csv",
        "groups": {"by": [{"column": "Subject Type", "map": {"Patient": "SZ", "Control": "HC"}}]},
        "gift": {
            "dir": "gift",
            "prefix": "demo",
            "n_components": N_C,
            "timecourses": {"low_pass": 0.15, "high_pass": 0.01},
        },
    }
    if aseg_template is not None:
        for i, sid in enumerate(IDS):
            write_aseg(
                aseg_template,
                root / "freesurfer" / sid / "stats" / "aseg.stats",
                1.0 + 0.05 * i + (0.1 if TYPES[i] == "Patient" else 0.0),
            )
        block["freesurfer"] = {"subjects_dir": "freesurfer"}
    block.update(overrides)
    cfg = root / "cohorts.yaml"
    cfg.write_text(yaml.safe_dump({"cohorts": {name: block}}, sort_keys=False))
    return cfg


def edit_block(cfg: Path, **changes) -> None:
    doc = yaml.safe_load(cfg.read_text())
    block = next(iter(doc["cohorts"].values()))
    block.update(changes)
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))


def run_cli(capsys, cfg: Path, kind: str, out: Path, *extra: str) -> tuple[int, str]:
    rc = main(
        [
            "preprocess",
            "--cohort-config",
            str(cfg),
            "--cohort",
            "demo",
            "--kind",
            kind,
            "--out",
            str(out),
            "-q",
            *extra,
        ]
    )
    return rc, capsys.readouterr().err


def assert_fails(capsys, cfg: Path, kind: str, *needles: str) -> str:
    """The CLI exits 2 with one line naming every needle, and leaves no output or temp file."""
    outdir = cfg.parent / "out"
    rc, err = run_cli(capsys, cfg, kind, outdir / "X.npz")
    assert rc == 2, err
    line = err.strip()
    assert "\n" not in line and line.startswith("autospec preprocess: error:"), err
    for needle in needles:
        assert str(needle) in line, (needle, line)
    left = list(outdir.iterdir()) if outdir.exists() else []
    assert left == [], left
    return line
