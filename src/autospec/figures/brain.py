"""Mean input map per group on the MNI152 template (nilearn, offline), with provenance.

Inputs are either one 3-D NIfTI per group, or a prepared spatial-maps dataset (``.npz`` with
``meta.affine``) from which the per-group mean maps are computed. Each group is one row of
orthogonal slices through the same cut coordinates and on one colour scale; with exactly two
groups a third row shows their difference (first minus second) on a diverging scale.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..provenance.sidecar import build_sidecar, save_figure
from .sidecar_fields import provenance_fields
from .style import BRAIN_CMAP, DIVERGING_CMAP, constrained_layout, fit_text, new_figure, panel_label, paper_style


def _load_3d(path: Path) -> Any:
    import nibabel as nib
    from nibabel.spatialimages import SpatialImage

    try:
        img = nib.load(str(path))
    except Exception as err:  # nibabel raises several types for a bad file
        raise InputError(f"{path}: not a readable NIfTI image ({type(err).__name__})") from None
    if not isinstance(img, SpatialImage):  # e.g. a CIFTI file: no voxel grid and no affine
        raise InputError(f"{path}: not a volume image (no voxel grid and affine)")
    data = np.asarray(img.dataobj, dtype=np.float32)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(f"{path}: expected a 3-D map per group, got shape {data.shape}")
    return nib.Nifti1Image(data, img.affine)


def _threshold(percentile: float | None, imgs: list[Any]) -> float | None:
    if percentile is None or not imgs:
        return None
    v = np.concatenate([np.abs(np.asarray(i.dataobj, dtype=float)).ravel() for i in imgs])
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.percentile(v, percentile)) if v.size else None


def group_mean_maps(dataset_path: os.PathLike[str] | str) -> dict[str, Any]:
    """Per-group mean images (name -> Nifti1Image) of a spatial-maps dataset (X: N × x × y × z)."""
    import nibabel as nib

    from ..data.dataset import load_dataset

    ds = load_dataset(dataset_path)
    if ds.X.ndim != 4 or "affine" not in ds.meta:
        raise InputError(f"{dataset_path}: not a spatial-maps dataset (need X of N × x × y × z and meta.affine)")
    affine = np.asarray(ds.meta["affine"], dtype=float)
    out = {}
    for gid in np.unique(ds.groups):
        name = str(ds.group_names[gid]) if gid < len(ds.group_names) else f"group{gid}"
        out[name] = nib.Nifti1Image(ds.X[ds.groups == gid].mean(axis=0).astype(np.float32), affine)
    return out


def brain_maps(
    maps: Mapping[str, os.PathLike[str] | str] | os.PathLike[str] | str,
    out_png: os.PathLike[str] | str | None,
    out_pdf: os.PathLike[str] | str | None,
    *,
    cut_coords: tuple[float, float, float] | None = None,
    threshold_percentile: float | None = 50.0,
    provenance: Mapping[str, Any] | None = None,
    sidecar_path: os.PathLike[str] | str | None = None,
) -> Path:
    """Draw each group's mean map on the MNI152 template; returns the sidecar path.

    ``maps`` is {group name: NIfTI path} or the path of a prepared spatial-maps dataset.
    Voxels whose |value| is below ``threshold_percentile`` of the non-zero |values| (group rows
    and difference row separately) are left transparent so the template shows through
    (None: no threshold).
    """
    from nilearn import datasets, plotting

    used, imgs = _group_images(maps)
    rows = _rows(imgs, threshold_percentile)
    template = datasets.load_mni152_template(resolution=2)
    cuts: tuple[float, ...] = (
        cut_coords if cut_coords is not None else tuple(float(c) for c in plotting.find_xyz_cut_coords(rows[0]["img"]))
    )
    # nilearn calls gc.collect() on every image access; in a process with a large heap (a test
    # session, a notebook) that dominates the run time. Freezing the existing heap makes those
    # collections cheap without changing what is collected among the new objects.
    gc.freeze()
    try:
        with paper_style():
            fig = new_figure(height_in=1.5 * len(rows))
            axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
            for i, (ax, row) in enumerate(zip(axes, rows)):
                panel_label(ax, chr(ord("A") + i), row["name"], pad=8)  # clear of the slices' L/R
                ax.axis("off")
            # nilearn draws into axes of its own at the row's position when it is called, which
            # the layout engine does not know: lay the rows and their titles out first, then freeze
            fit_text(fig)
            constrained_layout(fig).set(h_pad=0.12)  # room for the slices' coordinates (x=...)
            fig.draw_without_rendering()
            fig.set_layout_engine("none")
            for ax, row in zip(axes, rows):
                _draw_row(fig, ax, row, template, cuts)
            params = {
                "groups": list(imgs),
                "cut_coords": list(cuts),
                "template": "MNI152 (nilearn, 2 mm)",
                "threshold_percentile": threshold_percentile,
                "thresholds": {r["name"]: r["threshold"] for r in rows},
            }
            side = build_sidecar("brain", used, **provenance_fields(provenance, params))
            return save_figure(fig, out_png, out_pdf, side, sidecar_path)
    finally:
        gc.unfreeze()


def _group_images(
    maps: Mapping[str, os.PathLike[str] | str] | os.PathLike[str] | str,
) -> tuple[list[Path], dict[str, Any]]:
    """The input files (for the sidecar) and one 3-D image per group name."""
    if isinstance(maps, Mapping):
        if not maps:
            raise InputError("brain figure: no group maps given")
        used = [Path(p) for p in maps.values()]
        for p in used:
            if not p.is_file():
                raise InputError(f"{p}: group map not found")
        return used, {name: _load_3d(Path(p)) for name, p in maps.items()}
    if not Path(maps).is_file():
        raise InputError(f"{maps}: dataset not found")
    return [Path(maps)], group_mean_maps(maps)


def _draw_row(fig: Any, ax: Any, row: dict[str, Any], template: Any, cut_coords: tuple[float, ...]) -> None:
    """One row of orthogonal slices of ``row["img"]`` over the template."""
    from nilearn import plotting

    display = plotting.plot_stat_map(
        row["img"],
        bg_img=template,
        cut_coords=cut_coords,
        display_mode="ortho",
        axes=ax,
        figure=fig,
        cmap=row["cmap"],
        vmin=row["vmin"],
        vmax=row["vmax"],
        symmetric_cbar=row["vmin"] == -row["vmax"],
        colorbar=True,
        annotate=False,
        draw_cross=False,
        black_bg=False,
        threshold=row["threshold"],
        resampling_interpolation="continuous",
    )
    display.annotate(size=6)


def _rows(imgs: dict[str, Any], threshold_percentile: float | None) -> list[dict[str, Any]]:
    """One row per group on a shared scale; with two groups a difference row (diverging scale)."""
    import nibabel as nib

    groups = list(imgs.values())
    vmax = max(float(np.nanmax(np.abs(np.asarray(i.dataobj)))) for i in groups) or 1.0
    # non-negative maps use the whole sequential colour map from 0 (nilearn's default is symmetric)
    nonneg = all(float(np.nanmin(np.asarray(i.dataobj))) >= 0 for i in groups)
    thr = _threshold(threshold_percentile, groups)
    rows = [
        {"name": n, "img": i, "cmap": BRAIN_CMAP, "vmin": 0.0 if nonneg else -vmax, "vmax": vmax, "threshold": thr}
        for n, i in imgs.items()
    ]
    if len(imgs) == 2:
        (na, a), (nb, b) = imgs.items()
        if a.shape != b.shape or not np.allclose(a.affine, b.affine, atol=1e-4):
            raise InputError(f"brain figure: maps of {na} and {nb} are on different grids")
        diff = nib.Nifti1Image(np.asarray(a.dataobj) - np.asarray(b.dataobj), a.affine)
        dmax = float(np.nanmax(np.abs(np.asarray(diff.dataobj)))) or 1.0
        rows.append(
            {
                "name": f"{na} − {nb}",
                "img": diff,
                "cmap": DIVERGING_CMAP,
                "vmin": -dmax,
                "vmax": dmax,
                "threshold": _threshold(threshold_percentile, [diff]),
            }
        )
    return rows
