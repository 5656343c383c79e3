"""Preprocessing of a cohort's data into a :class:`~autospec.data.dataset.Dataset`.

Nothing is fitted across subjects here, so that held-out evaluation stays honest:

- volumes: FreeSurfer aseg volumes (N, S), optionally divided by each subject's eTIV. With
  ``freesurfer.zscore: true`` the dataset says ``meta["standardize"] = "features"``: the
  trainer standardises each structure with mean/sd fitted on its training subjects only.
- timecourses: per subject over time (:mod:`autospec.data.preprocess_timecourses`).
- spatialmaps: per subject (:mod:`autospec.data.preprocess_spatialmaps`).

``y`` is the class label (``label`` config, else the group), ``groups`` the group id; both index
sorted name lists.
"""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np

from ..errors import InputError
from .cohort import CohortConfig
from .dataset import STANDARDIZE_FEATURES, Dataset
from .freesurfer import table_volumes, volumes_table
from .preprocess_common import base_meta, dataset_fields, subjects_for
from .preprocess_spatialmaps import preprocess_spatial_maps
from .preprocess_timecourses import preprocess_timecourses
from .subjects import CohortSubjects

__all__ = ["preprocess", "preprocess_spatial_maps", "preprocess_timecourses", "preprocess_volumes"]

log = logging.getLogger(__name__)


def preprocess_volumes(cfg: CohortConfig, subjects: CohortSubjects | None = None) -> Dataset:
    """FreeSurfer volumes as a Dataset with X of shape (N, S)."""
    subs = subjects_for(cfg, "volumes", subjects)
    fs = cfg.freesurfer
    assert fs is not None
    if fs.table is not None:
        table, etiv = table_volumes(fs.table, subs.ids, fs.structures, fs.table_sep, fs.etiv_normalize)
    else:
        assert fs.subjects_dir is not None
        files = {s: subs.files[s][0] for s in subs.ids}
        table, etiv = volumes_table(fs.subjects_dir, subs.ids, fs.structures, fs.missing_structures, files)
    X = table.to_numpy(dtype=np.float64)
    if fs.etiv_normalize:
        X = X / etiv.to_numpy()[:, None]
    constant = [s for s, sd in zip(table.columns, X.std(axis=0)) if sd == 0]
    if constant:
        log.info("volumes: structure(s) constant over the cohort: %s", ", ".join(constant))
    meta = base_meta(cfg, "volumes", subs)
    meta.update(
        axes=["subject", "structure"],
        feature_names=[str(c) for c in table.columns],
        etiv_normalize=fs.etiv_normalize,
        zscore=fs.zscore,
        standardize=STANDARDIZE_FEATURES if fs.zscore else None,
        units="fraction of eTIV" if fs.etiv_normalize else "mm^3",
        etiv_mm3=etiv.round(3).tolist(),
        source=str(fs.table) if fs.table is not None else str(fs.subjects_dir),
    )
    return Dataset(X=X, meta=meta, **dataset_fields(subs))


def preprocess(
    cfg: CohortConfig, kind: str, subjects: CohortSubjects | None = None
) -> tuple[Dataset, nib.Nifti1Image | None]:
    """Dispatch on ``kind``; the image is the group-mean map (spatialmaps only, else None)."""
    if kind == "volumes":
        return preprocess_volumes(cfg, subjects), None
    if kind == "timecourses":
        return preprocess_timecourses(cfg, subjects), None
    if kind == "spatialmaps":
        return preprocess_spatial_maps(cfg, subjects)
    raise InputError(f"unknown data kind {kind!r} (use volumes, timecourses or spatialmaps)")
