"""Synthetic ICA signals for the demo cohort: NeuroMark-like time courses and spatial maps.

Time courses (150 x 53, TR 2 s): each component is a band-limited (Butterworth 0.01-0.15 Hz)
AR-like signal that shares a latent factor with the other components of its NeuroMark domain,
plus white measurement noise. Spatial maps: each component is a Gaussian blob at a fixed
centre inside the MNI152 brain (nilearn's bundled mask), with per-subject amplitude and
position jitter and voxel noise, zero outside the mask. See ``docs/demo_cohort.md``. They are
written to disk as GIFT writes them by :mod:`autospec.data.demo.gift_output`.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import nibabel as nib
import numpy as np
import numpy.typing as npt
from scipy import signal

from ..neuromark import DOMAIN_RANGES, N_COMPONENTS, component_domains

TR = 2.0  # s
N_TIMEPOINTS = 150
BAND_HZ = (0.01, 0.15)
BUTTER_ORDER = 3
WARMUP = 200  # samples discarded so the causal filter has forgotten its zero initial state
MEASUREMENT_NOISE = 0.3  # sd of the white noise added to the unit-variance band-limited part
BASE_COUPLING = 0.25  # within-domain correlation of the band-limited parts (HC and baseline)
COUPLING_MAX = 0.9

#: grid: origin (mm, MNI) of voxel (0, 0, 0) and the extent (mm) that the grid covers
GRID_ORIGIN = (-78.0, -112.0, -70.0)
GRID_EXTENT = (156.0, 186.0, 153.0)  # 3 mm -> 53 x 63 x 52 voxels (NeuroMark-like grid)
BLOB_SIGMA_MM = (7.0, 10.0)  # range of the fixed per-component Gaussian widths
JITTER_MM = 2.0  # sd of the per-subject shift of each blob centre
AMPLITUDE_RANGE = (2.5, 4.0)  # range of the fixed per-component peak values
AMPLITUDE_SUBJECT_SD = 0.10  # sd of log of the per-subject amplitude factor
VOXEL_NOISE_SD = 0.3
_LAYOUT_SEED = 53  # the component layout is fixed: it does not depend on the cohort seed

#: plausible MNI centres (mm) of the 53 components, in NeuroMark domain order
# fmt: off
_CENTRES_MM: dict[str, list[tuple[float, float, float]]] = {
    "SC": [(-24, 4, 2), (24, 4, 2), (-10, -18, 8), (10, -18, 8), (0, -24, -10)],
    "AU": [(-52, -20, 8), (52, -20, 8)],
    "SM": [(-38, -24, 56), (38, -24, 56), (0, -20, 66), (-54, -18, 30), (54, -18, 30),
           (-20, -40, 64), (20, -40, 64), (0, -4, 50), (-44, -4, 10)],
    "VI": [(0, -84, 4), (-20, -92, 0), (20, -92, 0), (0, -72, 20), (-36, -78, -6),
           (36, -78, -6), (-28, -62, -12), (28, -62, -12), (0, -90, 16)],
    "CC": [(-44, 24, 24), (44, 24, 24), (-32, 48, 10), (32, 48, 10), (0, 30, 40),
           (-40, -56, 44), (40, -56, 44), (-28, 8, 56), (28, 8, 56), (0, 20, 24),
           (-48, 12, 0), (48, 12, 0), (-36, 52, -6), (36, 52, -6), (-8, 56, 28),
           (8, 56, 28), (0, 44, -20)],
    "DM": [(0, -56, 30), (0, 52, 4), (-44, -66, 32), (44, -66, 32), (0, -36, 34),
           (-60, -20, -16), (0, 40, -14)],
    "CB": [(-24, -66, -34), (24, -66, -34), (0, -62, -30), (0, -76, -40)],
}
# fmt: on
assert [len(_CENTRES_MM[d]) for d in DOMAIN_RANGES] == [hi - lo + 1 for lo, hi in DOMAIN_RANGES.values()]


# ----------------------------------------------------------------------------------- grid, mask
@dataclass(frozen=True)
class Grid:
    mm: float
    shape: tuple[int, int, int]
    affine: np.ndarray

    def coords_mm(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x, y, z = (GRID_ORIGIN[a] + self.mm * np.arange(self.shape[a]) for a in range(3))
        return x, y, z


def make_grid(mm: float) -> Grid:
    nx, ny, nz = (int(e // mm) + 1 for e in GRID_EXTENT)
    affine = np.diag([mm, mm, mm, 1.0])
    affine[:3, 3] = GRID_ORIGIN
    return Grid(mm=float(mm), shape=(nx, ny, nz), affine=affine)


@functools.lru_cache(maxsize=1)
def _mni_mask_1mm() -> nib.Nifti1Image:
    from nilearn.datasets import load_mni152_brain_mask  # bundled with nilearn: offline

    m = load_mni152_brain_mask(resolution=1)
    return nib.Nifti1Image(np.asarray(m.dataobj, dtype=np.float32), m.affine)


@functools.lru_cache(maxsize=4)
def brain_mask(mm: float) -> np.ndarray:
    """MNI152 brain mask (nilearn, 1 mm) resampled onto the ``mm`` grid, boolean (X, Y, Z).

    Linear interpolation of the 0/1 mask, then > 0.5: a voxel is in the brain when most of
    its neighbourhood is.
    """
    from nilearn.image import resample_img

    grid = make_grid(mm)
    with warnings.catch_warnings():  # nilearn warns on interpolating a binary image: intended
        warnings.simplefilter("ignore")
        img = resample_img(
            _mni_mask_1mm(),
            target_affine=grid.affine,
            target_shape=grid.shape,
            interpolation="linear",
            force_resample=True,
            copy_header=True,
        )
    mask = np.asarray(img.get_fdata()) > 0.5
    mask.setflags(write=False)
    return mask


@functools.lru_cache(maxsize=1)
def component_layout() -> dict[str, np.ndarray]:
    """Fixed centres (mm, inside the MNI brain), widths and peak values, arrays of 53 rows."""
    rng = np.random.default_rng(_LAYOUT_SEED)
    wanted = np.array([c for d in DOMAIN_RANGES for c in _CENTRES_MM[d]], dtype=float)
    m = _mni_mask_1mm()
    inside = np.asarray(m.dataobj) > 0.5
    centres = np.array([_snap_inside(c, inside, m.affine) for c in wanted])
    return {
        "centre_mm": centres,
        "sigma_mm": rng.uniform(*BLOB_SIGMA_MM, size=N_COMPONENTS),
        "amplitude": rng.uniform(*AMPLITUDE_RANGE, size=N_COMPONENTS),
    }


def _snap_inside(centre_mm: np.ndarray, data: np.ndarray, affine: np.ndarray, radius_mm: float = 30.0) -> np.ndarray:
    """The centre of the (1 mm) mask voxel nearest ``centre_mm`` (itself when inside)."""
    v = np.rint(nib.affines.apply_affine(np.linalg.inv(affine), centre_mm)).astype(int)
    lo = np.maximum(v - int(radius_mm), 0)
    hi = np.minimum(v + int(radius_mm) + 1, data.shape)
    inside = np.argwhere(data[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]) + lo
    if not len(inside):
        raise RuntimeError(f"no brain voxel within {radius_mm} mm of {centre_mm.tolist()}")
    inside_mm: np.ndarray = nib.affines.apply_affine(affine, inside)
    nearest: np.ndarray = inside_mm[((inside_mm - centre_mm) ** 2).sum(axis=1).argmin()]
    return nearest


# ----------------------------------------------------------------------------- spatial maps
def spatial_maps(rng: np.random.Generator, grid: Grid, intensity_factor: np.ndarray) -> np.ndarray:
    """One subject's component maps, float32 (X, Y, Z, 53), zero outside the brain mask.

    ``map_c(v) = a_c * s_c * f_c * exp(-|v - (mu_c + j_c)|^2 / (2 sigma_c^2)) + e_c(v)`` with
    the fixed peak ``a_c``, centre ``mu_c`` and width ``sigma_c``; per subject
    ``s_c = exp(0.1 z)``, ``j_c ~ N(0, 2 mm)`` per axis, voxel noise ``e ~ N(0, 0.3)``; ``f_c``
    is the planted intensity factor (1 unless planted).
    """
    lay = component_layout()
    mask = brain_mask(grid.mm)
    amp = lay["amplitude"] * np.exp(AMPLITUDE_SUBJECT_SD * rng.standard_normal(N_COMPONENTS))
    amp = amp * intensity_factor
    centre = lay["centre_mm"] + JITTER_MM * rng.standard_normal((N_COMPONENTS, 3))
    sig = lay["sigma_mm"]
    gx, gy, gz = (
        np.exp(-((ax[None, :] - centre[:, a, None]) ** 2) / (2 * sig[:, None] ** 2))
        for a, ax in enumerate(grid.coords_mm())
    )  # each (53, n_axis)
    gx = (gx * amp[:, None]).astype(np.float32)
    gy, gz = gy.astype(np.float32), gz.astype(np.float32)
    # built as (C, Z, Y, X) C-order so that its transpose (X, Y, Z, C) is Fortran-ordered:
    # NIfTI stores Fortran order, so writing it is a plain memory copy
    maps_t: npt.NDArray[np.float32] = gz[:, :, None, None] * gy[:, None, :, None]
    maps_t = maps_t * gx[:, None, None, :]
    flat = maps_t.reshape(N_COMPONENTS, -1)
    inside = inside_index(grid.mm)  # flat (Z, Y, X) indices of brain voxels
    flat *= mask.T.ravel()
    noise = rng.standard_normal((N_COMPONENTS, inside.size), dtype=np.float32)
    flat[:, inside] = flat[:, inside] + VOXEL_NOISE_SD * noise
    return maps_t.T


@functools.lru_cache(maxsize=4)
def inside_index(mm: float) -> np.ndarray:
    return np.flatnonzero(brain_mask(mm).T.ravel())


# ----------------------------------------------------------------------------- time courses
@functools.lru_cache(maxsize=1)
def _band_sos() -> np.ndarray:
    sos: np.ndarray = signal.butter(BUTTER_ORDER, BAND_HZ, btype="bandpass", fs=1.0 / TR, output="sos")
    return sos


def _band_limited(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    """``n`` unit-variance band-limited series (length, n): filtered white noise, warm-up cut."""
    white = rng.standard_normal((WARMUP + length, n))
    x: npt.NDArray[np.float64] = signal.sosfilt(_band_sos(), white, axis=0)[WARMUP:]
    x -= x.mean(axis=0)
    sd: npt.NDArray[np.float64] = x.std(axis=0)
    return x / sd


def time_courses(rng: np.random.Generator, coupling: dict[str, float], length: int = N_TIMEPOINTS) -> np.ndarray:
    """One subject's ICA time courses, float32 (length, 53).

    For component ``c`` in domain ``d``: ``x_c = b_c * (sqrt(r_d) f_d + sqrt(1 - r_d) u_c +
    0.3 w_c)`` with ``f_d`` (domain factor) and ``u_c`` unit-variance band-limited series,
    ``w_c`` white noise, ``b_c = exp(0.2 z)`` an arbitrary per-component scale, and ``r_d`` the
    within-domain coupling: the correlation of the band-limited parts of two components of
    domain ``d`` (``coupling``; default ``BASE_COUPLING``).
    """
    domains = list(DOMAIN_RANGES)
    comp_dom = component_domains()
    factors = _band_limited(rng, len(domains), length)
    unique = _band_limited(rng, N_COMPONENTS, length)
    white = rng.standard_normal((length, N_COMPONENTS))
    scale = np.exp(0.2 * rng.standard_normal(N_COMPONENTS))
    r = np.array([coupling.get(d, BASE_COUPLING) for d in comp_dom])
    f = factors[:, [domains.index(d) for d in comp_dom]]
    x: npt.NDArray[np.float64] = np.sqrt(r) * f + np.sqrt(1.0 - r) * unique + MEASUREMENT_NOISE * white
    return (x * scale).astype(np.float32)
