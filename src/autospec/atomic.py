"""Atomic file output: write to a temporary file beside the target, then rename.

A step that fails half-way leaves no partial output behind: either every target of a
:func:`atomic_outputs` block is renamed into place, or none is and the temporaries are removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: ``.<name>.<random>.tmp``: the temporary :func:`atomic_outputs` writes beside ``<name>``
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.tmp$")


def final_name(path: os.PathLike[str] | str) -> str:
    """The target a temporary of this module stands for (``d/.x.npz.k3j2h1g0.tmp`` -> ``d/x.npz``), else ``path``.

    Error messages name the file the user asked for, not the temporary that failed.
    """
    p = Path(path)
    m = _TEMP_NAME.match(p.name)
    return str(p.with_name(m.group("name"))) if m else str(path)


def _temp_beside(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp creates 0600; the final file should have the usual permissions (0666 & ~umask)
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_outputs(*paths: os.PathLike[str] | str) -> Iterator[Sequence[Path]]:
    """Yield temporary paths for ``paths``; rename them all into place on success.

    The temporaries keep the target's suffix-less name hidden (``.name.XXXX.tmp``) so a glob for
    the real outputs never sees them. On any exception all temporaries are deleted and nothing at
    the target paths is touched.
    """
    targets = [Path(p) for p in paths]
    temps = [_temp_beside(t) for t in targets]
    try:
        yield temps
        for tmp, target in zip(temps, targets):
            os.replace(tmp, target)
    except BaseException:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_output(path: os.PathLike[str] | str) -> Iterator[Path]:
    """Single-file form of :func:`atomic_outputs`."""
    with atomic_outputs(path) as (tmp,):
        yield tmp


def write_text_atomic(path: os.PathLike[str] | str, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def sha256_file(path: os.PathLike[str] | str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
