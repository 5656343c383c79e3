"""GIFT ICA spatial maps -> a Dataset with X of shape (N, X, Y, Z), and the group-mean image.

Per subject: components selected, sessions averaged (``gift.sessions: all``) or one chosen,
reduced over the component axis (max or mean), optionally resampled with nilearn to
``target_shape`` (same field of view) and masked. Nothing is fitted across subjects; the
group-mean image is for figures only.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.spatialimages import SpatialImage
from nilearn import image as nli

from ..errors import InputError
from . import gift
from .cohort import CohortConfig
from .component_labels import default_labels, resolve_components
from .dataset import Dataset
from .preprocess_common import base_meta, dataset_fields, subjects_for
from .subjects import CohortSubjects


def _target_grid(affine: np.ndarray, shape: tuple[int, ...], target: tuple[int, int, int]) -> np.ndarray:
    """Affine of a ``target``-shaped grid covering the same field of view as (affine, shape)."""
    scale = np.asarray(shape[:3], float) / np.asarray(target, float)
    new = affine.copy()
    new[:3, :3] = affine[:3, :3] @ np.diag(scale)
    # keep the outer corner of voxel (0, 0, 0) fixed: voxel centres sit half a voxel inside
    new[:3, 3] = affine[:3, 3] - 0.5 * affine[:3, :3].sum(axis=1) + 0.5 * new[:3, :3].sum(axis=1)
    return new


def _load_mask(path: Path, ref: nib.Nifti1Image) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"field gift.spatial_maps.mask: mask file {path} not found")
    try:
        loaded = nib.load(path)
        if not isinstance(loaded, SpatialImage):  # e.g. a CIFTI file: no voxel grid and no affine
            raise InputError(f"{path}: mask is a {type(loaded).__name__}, not a NIfTI volume")
        mask = nib.Nifti1Image(np.asarray(loaded.dataobj), loaded.affine)
    except InputError:
        raise
    except gift.NIFTI_ERRORS as err:
        raise InputError(f"{path}: corrupt or truncated NIfTI mask ({err})") from None
    if len(mask.shape) != 3:
        raise InputError(f"{path}: mask must be 3-D, got shape {mask.shape}")
    res = nli.resample_to_img(mask, ref, interpolation="nearest", force_resample=True, copy_header=True)
    keep = np.asarray(res.dataobj) > 0
    if not keep.any():
        raise InputError(f"{path}: mask is empty on the spatial-map grid")
    return keep


def _affine_text(a: np.ndarray) -> str:
    return "[" + "; ".join(" ".join(f"{v:g}" for v in row) for row in np.asarray(a)[:3]) + "]"


def _subject_volume(subs: CohortSubjects, sid: str, cfg: CohortConfig, comps: list[int] | None) -> nib.Nifti1Image:
    g = cfg.gift
    assert g is not None
    reduce = np.max if g.spatial_maps.reduce == "max" else np.mean
    maps: list[np.ndarray] = []
    first: nib.Nifti1Image | None = None
    for f in subs.files[sid]:
        img = gift.read_component_maps(f, g.n_components)
        if first is None:
            first = img
        elif img.shape != first.shape or not np.allclose(img.affine, first.affine, atol=1e-4):
            raise InputError(
                f"subject {sid}: sessions are on different grids: {f} {img.shape[:3]} affine {_affine_text(img.affine)} "
                f"vs {subs.files[sid][0]} {first.shape[:3]} affine {_affine_text(first.affine)}"
            )
        maps.append(gift.select_components(np.asarray(img.dataobj), comps, g.n_components))
    data = np.mean(maps, axis=0) if len(maps) > 1 else maps[0]
    assert first is not None
    return nib.Nifti1Image(reduce(data, axis=3).astype(np.float32), first.affine)


def preprocess_spatial_maps(
    cfg: CohortConfig, subjects: CohortSubjects | None = None
) -> tuple[Dataset, nib.Nifti1Image]:
    """Reduced spatial maps as a Dataset with X of shape (N, X, Y, Z), and the group-mean image."""
    subs = subjects_for(cfg, "spatialmaps", subjects)
    g = cfg.gift
    assert g is not None
    opts = g.spatial_maps
    labels = default_labels(g.component_labels, g.n_components)
    comps = resolve_components(g.components, labels, g.n_components)
    vols: list[np.ndarray] = []
    ref_affine = ref_shape = ref_sid = None
    for sid in subs.ids:
        vol = _subject_volume(subs, sid, cfg, comps)
        if ref_affine is None:
            ref_sid, ref_shape = sid, vol.shape
            ref_affine = _target_grid(vol.affine, vol.shape, opts.target_shape) if opts.target_shape else vol.affine
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
                f"subject {sid}: spatial maps {subs.files[sid][0]} are on grid {vol.shape} affine "
                f"{_affine_text(vol.affine)}, subject {ref_sid}'s on {ref_shape} affine {_affine_text(ref_affine)}; "
                f"set gift.spatial_maps.target_shape to resample"
            )
        vols.append(np.asarray(vol.dataobj, dtype=np.float32))
    X = np.stack(vols)
    if opts.mask is not None:
        keep = _load_mask(opts.mask, nib.Nifti1Image(X[0], ref_affine))
        X = X * keep[None]
        subs.meta_files.append(opts.mask)
    mean_img = nib.Nifti1Image(X.mean(axis=0).astype(np.float32), ref_affine)
    mean_img.set_data_dtype(np.float32)
    used = comps or list(range(1, g.n_components + 1))
    meta = base_meta(cfg, "spatialmaps", subs)
    meta.update(
        axes=["subject", "x", "y", "z"],
        reduce=opts.reduce,
        sessions=g.sessions,
        gift_index=subs.gift_index,
        components=used,
        shape=list(X.shape[1:]),
        affine=np.asarray(ref_affine).round(6).tolist(),
        zooms=[float(z) for z in np.sqrt((np.asarray(ref_affine)[:3, :3] ** 2).sum(axis=0))],
        target_shape=list(opts.target_shape) if opts.target_shape else None,
        mask=str(opts.mask) if opts.mask else None,
    )
    return Dataset(X=X, meta=meta, **dataset_fields(subs)), mean_img
