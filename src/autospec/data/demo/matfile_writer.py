"""Write MAT-files the way MATLAB does, v5 (scipy) or v7.3 (HDF5 via h5py), for GIFT fixtures.

Values: ``dict`` -> scalar struct; :class:`StructArray` -> 1xN struct array; ``str`` -> char
row; :class:`CharMatrix` -> char matrix (rows space-padded, as MATLAB's ``char``/``str2mat``);
:class:`Cell` -> 1xN cell; numbers / numpy arrays -> double (or the array's class); ``None``
-> empty double ``[]``.

The v7.3 layout follows MATLAB's: a 512-byte header (``MATLAB 7.3 MAT-file ...``, version
0x0200, endian ``IM``) before the HDF5 data; every variable carries ``MATLAB_class``; arrays
are stored transposed (column-major); chars as uint16 with ``MATLAB_int_decode = 2``; a
struct is a group; a struct array's fields and a cell's elements are object references to
datasets in ``#refs#``; empties hold their dimensions with ``MATLAB_empty = 1``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


class StructArray(list[dict[str, Any]]):
    """A 1xN MATLAB struct array: a list of dicts with the same keys."""


class CharMatrix(list[str]):
    """A MATLAB char matrix: one str per row (padded with spaces to the longest)."""


class Cell(list[Any]):
    """A 1xN MATLAB cell array."""


def save_mat(path: os.PathLike[str] | str, variables: dict[str, Any], version: str = "7.3") -> None:
    """Write ``variables`` to ``path`` as a v5 (``"5"``) or v7.3 (``"7.3"``) MAT-file."""
    if version == "5":
        from scipy.io import savemat

        savemat(str(path), {k: _to_scipy(v) for k, v in variables.items()}, format="5", oned_as="row")
    elif version == "7.3":
        _save_v73(Path(path), variables)
    else:
        raise ValueError(f"MAT-file version {version!r}: use '5' or '7.3'")


# --------------------------------------------------------------------------------- v5
def _padded(rows: list[str]) -> np.ndarray:
    width = max((len(r) for r in rows), default=0)
    return np.array([r.ljust(width) for r in rows], dtype=f"U{max(width, 1)}")


def _to_scipy(v: Any) -> Any:
    if isinstance(v, StructArray):
        keys = list(v[0])
        arr = np.empty((1, len(v)), dtype=[(k, object) for k in keys])
        for i, item in enumerate(v):
            for k in keys:
                arr[0, i][k] = _to_scipy(item[k])
        return arr
    if isinstance(v, dict):
        return {k: _to_scipy(x) for k, x in v.items()}
    if isinstance(v, CharMatrix):
        return _padded(list(v))
    if isinstance(v, Cell):
        arr = np.empty((1, len(v)), dtype=object)
        for i, x in enumerate(v):
            arr[0, i] = _to_scipy(x)
        return arr
    if v is None:
        return np.zeros((0, 0))
    return np.asarray(v, dtype=float) if isinstance(v, (int, float, list)) else v  # a str stays as it is


# ------------------------------------------------------------------------------- v7.3
def _userblock() -> bytes:
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    head = bytearray(512)
    head[:116] = text.ljust(116)[:116]
    head[124:128] = b"\x00\x02IM"
    return bytes(head)


def _save_v73(path: Path, variables: dict[str, Any]) -> None:
    import h5py

    with h5py.File(path, "w", userblock_size=512, libver="earliest") as f:
        refs = f.create_group("#refs#")
        counter = iter(range(10**9))

        def new_ref(value: Any) -> Any:
            name = f"r{next(counter)}"
            write(refs, name, value)
            return refs[name].ref

        def attrs(obj: Any, cls: str, **extra: Any) -> None:
            obj.attrs["MATLAB_class"] = np.bytes_(cls)
            for k, x in extra.items():
                obj.attrs[k] = x

        def write(parent: Any, name: str, v: Any) -> None:
            if v is None:
                attrs(parent.create_dataset(name, data=np.array([0, 0], np.uint64)), "double", MATLAB_empty=np.uint8(1))
            elif isinstance(v, StructArray):
                g = parent.create_group(name)
                attrs(g, "struct")
                for k in v[0]:
                    g.create_dataset(k, data=np.array([[new_ref(item[k])] for item in v], dtype=h5py.ref_dtype))
            elif isinstance(v, dict):
                g = parent.create_group(name)
                attrs(g, "struct")
                for k, x in v.items():
                    write(g, k, x)
            elif isinstance(v, Cell):
                data = np.array([[new_ref(x)] for x in v], dtype=h5py.ref_dtype)
                attrs(parent.create_dataset(name, data=data), "cell")
            elif isinstance(v, (str, CharMatrix)):
                rows = [v] if isinstance(v, str) else list(v)
                if not any(rows):
                    attrs(
                        parent.create_dataset(name, data=np.array([len(rows), 0], np.uint64)),
                        "char",
                        MATLAB_empty=np.uint8(1),
                    )
                    return
                chars = np.array([[ord(c) for c in r] for r in _padded(rows)], dtype=np.uint16)
                attrs(parent.create_dataset(name, data=chars.T), "char", MATLAB_int_decode=np.int32(2))
            else:
                arr = np.asarray(v, dtype=float) if isinstance(v, (int, float, list)) else np.asarray(v)
                arr = np.atleast_2d(arr) if arr.ndim < 2 else arr
                cls = (
                    "logical"
                    if arr.dtype == bool
                    else {"f": "double" if arr.dtype == np.float64 else "single"}.get(arr.dtype.kind, str(arr.dtype))
                )
                data = arr.astype(np.uint8) if arr.dtype == bool else arr
                ds = parent.create_dataset(name, data=data.T)
                attrs(ds, cls, **({"MATLAB_int_decode": np.int32(1)} if cls == "logical" else {}))

        for key, value in variables.items():
            write(f, key, value)
    with open(path, "r+b") as fh:
        fh.write(_userblock())
