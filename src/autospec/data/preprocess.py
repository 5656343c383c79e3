"""Preprocessing of a cohort's data into a :class:`~autospec.data.dataset.Dataset`.

- volumes: FreeSurfer aseg volumes (N, S), optionally divided by eTIV, z-scored per structure
  (scikit-learn ``StandardScaler``, fitted on the whole cohort: the model-input scale, not a
  held-out-safe transform).
- timecourses: GIFT ICA time courses (N, T, C) cleaned per subject with ``nilearn.signal.clean``
  (detrend, Butterworth band-pass, standardize) at the cohort's TR; unequal lengths are cropped
  (before cleaning, so every subject is filtered over the same window), zero-padded at the end
  (after cleaning) or rejected, as configured.
- spatialmaps: GIFT ICA spatial maps reduced over the component axis (max or mean) to one 3-D
  volume per subject (N, X, Y, Z), optionally resampled with nilearn to ``target_shape`` (same
  field of view) and masked; also the group-mean image for figures.

``y`` is the class label (``label`` config, else the group), ``groups`` the group id; both index
sorted name lists.
"""

from __future__ import annotations

import logging
from typing import Any

import nibabel as nib
import numpy as np
from nilearn import image as nli
from nilearn import signal as nls
from sklearn.preprocessing import StandardScaler

from ..errors import InputError
from . import gift
from .cohort import CohortConfig, CohortSubjects, cohort_subjects
from .dataset import Dataset
from .freesurfer import volumes_table
from .neuromark import N_COMPONENTS, component_domains

log = logging.getLogger(__name__)


def _labels(subs: CohortSubjects) -> dict[str, Any]:
    group_names = sorted(set(subs.groups))
    class_names = sorted(set(subs.labels))
    return {
        "groups": [group_names.index(g) for g in subs.groups.loc[subs.ids]],
        "y": [class_names.index(c) for c in subs.labels.loc[subs.ids]],
        "group_names": group_names,
        "class_names": class_names,
        "subject_ids": list(subs.ids),
    }


def _subjects(cfg: CohortConfig, kind: str, subjects: CohortSubjects | None) -> CohortSubjects:
    if subjects is None:
        return cohort_subjects(cfg, kind)
    if subjects.kind != kind:
        raise ValueError(f"subjects were selected for kind {subjects.kind!r}, not {kind!r}")
    return subjects


def _base_meta(cfg: CohortConfig, kind: str, subs: CohortSubjects) -> dict[str, Any]:
    return {
        "kind": kind,
        "cohort": cfg.name,
        "n_subjects": len(subs),
        "left_out": {k: v for k, v in subs.ignored.items() if v},
    }


def preprocess_volumes(cfg: CohortConfig, subjects: CohortSubjects | None = None) -> Dataset:
    """FreeSurfer volumes as a Dataset with X of shape (N, S)."""
    subs = _subjects(cfg, "volumes", subjects)
    fs = cfg.freesurfer
    table, etiv = volumes_table(fs.subjects_dir, subs.ids, fs.structures)
    X = table.to_numpy(dtype=np.float64)
    if fs.etiv_normalize:
        X = X / etiv.to_numpy()[:, None]
    constant = [s for s, sd in zip(table.columns, X.std(axis=0)) if sd == 0]
    if constant:
        log.info(
            "volumes: structure(s) constant over the cohort (all 0 after z-scoring): %s",
            ", ".join(constant),
        )
    meta = _base_meta(cfg, "volumes", subs)
    if fs.zscore:
        scaler = StandardScaler().fit(X)
        X = scaler.transform(X)
        meta["zscore_mean"] = scaler.mean_.tolist()
        meta["zscore_scale"] = scaler.scale_.tolist()
    meta.update(
        axes=["subject", "structure"],
        feature_names=[str(c) for c in table.columns],
        etiv_normalize=fs.etiv_normalize,
        zscore=fs.zscore,
        units=("z" if fs.zscore else "fraction of eTIV" if fs.etiv_normalize else "mm^3"),
        etiv_mm3=etiv.round(3).tolist(),
    )
    return Dataset(X=X, meta=meta, **_labels(subs))


def _length_target(lengths: dict[str, int], policy: str, length: int | None) -> int:
    where = "gift.timecourses"
    if policy == "crop":
        target = length or min(lengths.values())
        short = [s for s, t in lengths.items() if t < target]
        if short:
            raise InputError(
                f"subject {short[0]}: {lengths[short[0]]} time points, fewer than "
                f"{where}.length {target} (length_policy crop)"
            )
    elif policy == "pad":
        target = length or max(lengths.values())
        long = [s for s, t in lengths.items() if t > target]
        if long:
            raise InputError(
                f"subject {long[0]}: {lengths[long[0]]} time points, more than "
                f"{where}.length {target} (length_policy pad)"
            )
    else:
        target = length or next(iter(lengths.values()))
        odd = [s for s, t in lengths.items() if t != target]
        if odd:
            first = next(iter(lengths))
            raise InputError(
                f"subject {odd[0]}: {lengths[odd[0]]} time points, expected {target} "
                f"({'field ' + where + '.length' if length else 'as subject ' + first}; "
                f"length_policy error)"
            )
    return target


def preprocess_timecourses(cfg: CohortConfig, subjects: CohortSubjects | None = None) -> Dataset:
    """ICA time courses as a Dataset with X of shape (N, T, C)."""
    subs = _subjects(cfg, "timecourses", subjects)
    g, opts = cfg.gift, cfg.gift.timecourses
    series: dict[str, np.ndarray] = {}
    for sid in subs.ids:
        ts = gift.read_timecourses(subs.files[sid], g.n_components, g.tr)
        series[sid] = gift.select_components(ts, g.components, g.n_components)
    lengths = {s: t.shape[0] for s, t in series.items()}
    target = _length_target(lengths, opts.length_policy, opts.length)
    cropped = [s for s, t in lengths.items() if t > target]
    padded = [s for s, t in lengths.items() if t < target]
    if cropped:
        log.info("timecourses: cropped to %d time points: %s", target, ", ".join(cropped))
    if padded:
        log.info("timecourses: zero-padded at the end to %d time points: %s", target, ", ".join(padded))

    use_filter = opts.low_pass is not None or opts.high_pass is not None
    out = []
    for sid in subs.ids:
        ts = series[sid][:target]
        try:
            clean = nls.clean(
                ts,
                detrend=opts.detrend,
                standardize=opts.standardize or None,
                filter="butterworth" if use_filter else False,
                low_pass=opts.low_pass,
                high_pass=opts.high_pass,
                t_r=g.tr,
            )
        except ValueError as err:
            raise InputError(
                f"subject {sid}: cannot clean {subs.files[sid]} with {ts.shape[0]} "
                f"time points ({str(err).splitlines()[0]})"
            ) from None
        if clean.shape[0] < target:
            clean = np.pad(clean, ((0, target - clean.shape[0]), (0, 0)))
        out.append(clean)
    X = np.stack(out)

    comps = list(g.components) if g.components else list(range(1, g.n_components + 1))
    meta = _base_meta(cfg, "timecourses", subs)
    meta.update(
        axes=["subject", "time", "component"],
        tr=g.tr,
        components=comps,
        n_timepoints=target,
        original_lengths=lengths,
        length_policy=opts.length_policy,
        cropped=cropped,
        padded=padded,
        clean={
            "detrend": opts.detrend,
            "low_pass": opts.low_pass,
            "high_pass": opts.high_pass,
            "standardize": opts.standardize or None,
            "filter": "butterworth" if use_filter else None,
        },
    )
    if g.components is None and len(comps) == N_COMPONENTS:
        meta["domains"] = component_domains()
    return Dataset(X=X, meta=meta, **_labels(subs))


def _target_grid(affine: np.ndarray, shape: tuple[int, ...], target: tuple[int, int, int]):
    """Affine of a ``target``-shaped grid covering the same field of view as (affine, shape)."""
    scale = np.asarray(shape[:3], float) / np.asarray(target, float)
    new = affine.copy()
    new[:3, :3] = affine[:3, :3] @ np.diag(scale)
    # keep the outer corner of voxel (0, 0, 0) fixed: voxel centres sit half a voxel inside
    new[:3, 3] = affine[:3, 3] - 0.5 * affine[:3, :3].sum(axis=1) + 0.5 * new[:3, :3].sum(axis=1)
    return new


def _load_mask(path, ref: nib.Nifti1Image) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"field gift.spatial_maps.mask: mask file {path} not found")
    try:
        mask = nib.load(path)
        mask = nib.Nifti1Image(np.asarray(mask.dataobj), mask.affine)
    except gift.NIFTI_ERRORS as err:
        raise InputError(f"{path}: corrupt or truncated NIfTI mask ({err})") from None
    if len(mask.shape) != 3:
        raise InputError(f"{path}: mask must be 3-D, got shape {mask.shape}")
    res = nli.resample_to_img(mask, ref, interpolation="nearest", force_resample=True, copy_header=True)
    keep = np.asarray(res.dataobj) > 0
    if not keep.any():
        raise InputError(f"{path}: mask is empty on the spatial-map grid")
    return keep


def preprocess_spatial_maps(
    cfg: CohortConfig, subjects: CohortSubjects | None = None
) -> tuple[Dataset, nib.Nifti1Image]:
    """Reduced spatial maps as a Dataset with X of shape (N, X, Y, Z), and the group-mean image."""
    subs = _subjects(cfg, "spatialmaps", subjects)
    g, opts = cfg.gift, cfg.gift.spatial_maps
    reduce = np.max if opts.reduce == "max" else np.mean
    vols: list[np.ndarray] = []
    ref_affine = ref_shape = None
    ref_sid = None
    for sid in subs.ids:
        img = gift.read_component_maps(subs.files[sid], g.n_components)
        data = gift.select_components(np.asarray(img.dataobj), g.components, g.n_components)
        vol = nib.Nifti1Image(reduce(data, axis=3).astype(np.float32), img.affine)
        if ref_affine is None:
            ref_sid, ref_shape = sid, vol.shape
            ref_affine = _target_grid(img.affine, vol.shape, opts.target_shape) if opts.target_shape else img.affine
        if opts.target_shape:
            vol = nli.resample_img(
                vol,
                target_affine=ref_affine,
                target_shape=opts.target_shape,
                interpolation="continuous",
                force_resample=True,
                copy_header=True,
            )
        elif vol.shape != ref_shape or not np.allclose(vol.affine, ref_affine, atol=1e-4):
            raise InputError(
                f"subject {sid}: spatial maps {subs.files[sid]} are on a different grid "
                f"({vol.shape}) than subject {ref_sid}'s ({ref_shape}); set "
                f"gift.spatial_maps.target_shape to resample"
            )
        vols.append(np.asarray(vol.dataobj, dtype=np.float32))
    X = np.stack(vols)
    out_shape = X.shape[1:]
    if opts.mask is not None:
        keep = _load_mask(opts.mask, nib.Nifti1Image(X[0], ref_affine))
        X = X * keep[None]
        subs.meta_files.append(opts.mask)
    mean_img = nib.Nifti1Image(X.mean(axis=0).astype(np.float32), ref_affine)
    mean_img.set_data_dtype(np.float32)

    comps = list(g.components) if g.components else list(range(1, g.n_components + 1))
    meta = _base_meta(cfg, "spatialmaps", subs)
    meta.update(
        axes=["subject", "x", "y", "z"],
        reduce=opts.reduce,
        components=comps,
        shape=list(out_shape),
        affine=np.asarray(ref_affine).round(6).tolist(),
        zooms=[float(z) for z in np.sqrt((np.asarray(ref_affine)[:3, :3] ** 2).sum(axis=0))],
        target_shape=list(opts.target_shape) if opts.target_shape else None,
        mask=str(opts.mask) if opts.mask else None,
    )
    return Dataset(X=X, meta=meta, **_labels(subs)), mean_img


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
