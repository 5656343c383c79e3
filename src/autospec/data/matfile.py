"""Read MATLAB MAT-files (v5/v7 with scipy, v7.3 = HDF5 with h5py) into plain Python values.

GIFT saves its parameter files with ``save(..., '-v7.3')`` (``ENFORCE_MAT_FILE_VER`` in
``icatb_defaults.m``), older releases and other settings as v5/v7; both are read here into
one representation, so callers never see which one it was:

- scalar struct -> ``dict``; 1xN struct array -> ``list`` of ``dict``
- char row -> ``str``; char matrix (``str2mat``-style, space padded) -> ``list`` of ``str``
  (each row right-stripped)
- numeric / logical -> ``numpy.ndarray`` squeezed (a 1x1 becomes a 0-d array)
- cell -> ``list`` (flattened in MATLAB's column-major order)
- empty -> ``None``

Only the named variables are decoded. Decoding is bounded (depth, number of elements) so a
damaged or hostile file cannot exhaust memory; no code is executed (MATLAB objects and
function handles are refused).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

#: the 512-byte header of a v7.3 file starts with this text; the HDF5 data follow at 512
V73_TEXT = b"MATLAB 7.3 MAT-file"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
MAX_DEPTH = 32
#: numbers/characters decoded per file (a memory bound, not a format rule); the full demo cohort's
#: parameter file alone holds 294 char matrices of 114 x 150 (the functional volumes' paths), 5.03 M
MAX_ELEMENTS = 50_000_000


def mat_version(path: os.PathLike[str] | str) -> str:
    """``"7.3"`` or ``"5"`` from the file's header; InputError when it is neither."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(520)
    except FileNotFoundError:
        raise InputError(f"{p}: MAT-file not found") from None
    except OSError as err:
        raise InputError(f"{p}: cannot read MAT-file ({err.strerror or err})") from None
    if head.startswith(V73_TEXT) and head[512:520] == HDF5_SIGNATURE:
        return "7.3"
    if head.startswith(b"MATLAB 5.0 MAT-file") and len(head) >= 128:
        return "5"
    raise InputError(f"{p}: not a MATLAB MAT-file (v5/v7 or v7.3 header expected)")


def load_mat(path: os.PathLike[str] | str, variables: Sequence[str]) -> dict[str, Any]:
    """The ``variables`` of a MAT-file that are present, decoded as described in the module doc.

    Raises
    ------
    InputError
        Missing, unreadable or damaged file, or content beyond the decoding bounds.
    """
    p = Path(path)
    version = mat_version(p)
    try:
        raw = _load_v73(p, variables) if version == "7.3" else _load_v5(p, variables)
    except InputError:
        raise
    except (OSError, ValueError, TypeError, KeyError, IndexError, RecursionError, MemoryError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{p}: damaged MAT-file (v{version}): {first}") from None
    return raw


class _Budget:
    def __init__(self, path: Path):
        self.path, self.left = path, MAX_ELEMENTS

    def take(self, n: int) -> None:
        self.left -= int(n)
        if self.left < 0:
            raise InputError(f"{self.path}: MAT-file holds more than {MAX_ELEMENTS} values; refused")


# --------------------------------------------------------------------------------- v5 / v7
def _load_v5(path: Path, variables: Sequence[str]) -> dict[str, Any]:
    from scipy.io import loadmat
    from scipy.io.matlab import MatlabFunction, MatlabOpaque

    raw = loadmat(str(path), variable_names=list(variables), squeeze_me=False, struct_as_record=True)
    budget = _Budget(path)

    def conv(v: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise InputError(f"{path}: MAT-file nested deeper than {MAX_DEPTH} levels; refused")
        if isinstance(v, (MatlabOpaque, MatlabFunction)):
            raise InputError(f"{path}: MAT-file holds a MATLAB object or function handle; refused")
        if not isinstance(v, np.ndarray):
            return v
        budget.take(v.size)
        if v.dtype.names:  # struct (array)
            items = [{k: conv(e[k], depth + 1) for k in v.dtype.names} for e in v.ravel(order="F")]
            return items[0] if v.size == 1 else items
        if v.dtype.kind == "U":
            return _char_value(v)
        if v.dtype == object:  # cell
            return [conv(e, depth + 1) for e in v.ravel(order="F")]
        if v.size == 0:
            return None
        return np.squeeze(v)

    return {k: conv(raw[k], 0) for k in variables if k in raw}


def _char_value(v: np.ndarray) -> str | list[str] | None:
    """A char array: one str per row (scipy keeps rows as elements), one row as a plain str."""
    rows = [str(s).rstrip() for s in v.ravel(order="F")]
    if not rows:
        return None
    return rows[0] if len(rows) == 1 else rows


# ------------------------------------------------------------------------------------ v7.3
def _attr(node: Any, name: str) -> str | None:
    val = node.attrs.get(name)
    if val is None:
        return None
    return val.decode() if isinstance(val, bytes) else str(np.asarray(val).astype(str))


def _load_v73(path: Path, variables: Sequence[str]) -> dict[str, Any]:
    import h5py

    budget = _Budget(path)
    with h5py.File(path, "r") as f:

        def deref(ref: Any, depth: int) -> Any:
            if not ref:
                return None
            return node(f[ref], depth + 1)

        def dataset(ds: Any, depth: int) -> Any:
            cls = _attr(ds, "MATLAB_class")
            if "MATLAB_empty" in ds.attrs:
                return None
            budget.take(ds.size)
            data = ds[()]
            if cls == "cell" or (cls is None and ds.dtype == h5py.ref_dtype):
                return [deref(r, depth) for r in np.asarray(data).ravel()]
            if cls == "char":
                chars = np.atleast_2d(np.asarray(data)).T  # HDF5 (cols, rows) -> (rows, cols)
                rows = ["".join(map(chr, row)).rstrip() for row in chars]
                return rows[0] if len(rows) == 1 else rows
            if cls in ("struct", "function_handle") or cls is None or ds.dtype.kind not in "biuf":
                raise InputError(f"{path}: MAT-file dataset {ds.name} of class {cls} is not supported")
            arr = np.asarray(data).T
            return np.squeeze(arr.astype(bool) if cls == "logical" else arr)

        def group(g: Any, depth: int) -> Any:
            if _attr(g, "MATLAB_class") != "struct":
                raise InputError(f"{path}: MAT-file group {g.name} is not a MATLAB struct")
            fields = {k: g[k] for k in g}
            as_array = fields and all(
                isinstance(m, h5py.Dataset) and m.dtype == h5py.ref_dtype and "MATLAB_class" not in m.attrs
                for m in fields.values()
            )
            if not as_array:  # scalar struct: each member is the field's value
                return {k: node(m, depth + 1) for k, m in fields.items()}
            columns = {k: [deref(r, depth) for r in np.asarray(m[()]).ravel()] for k, m in fields.items()}
            n = {len(v) for v in columns.values()}
            if len(n) != 1:
                raise InputError(f"{path}: MAT-file struct array {g.name} has fields of unequal length")
            items = [{k: v[i] for k, v in columns.items()} for i in range(n.pop())]
            return items[0] if len(items) == 1 else items

        def node(obj: Any, depth: int) -> Any:
            if depth > MAX_DEPTH:
                raise InputError(f"{path}: MAT-file nested deeper than {MAX_DEPTH} levels; refused")
            return group(obj, depth) if isinstance(obj, h5py.Group) else dataset(obj, depth)

        return {k: node(f[k], 0) for k in variables if k in f}
