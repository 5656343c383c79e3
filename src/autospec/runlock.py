"""One writer per run directory: an OS-level lock on ``<run dir>/.autospec.lock``.

``autospec train`` takes the lock before it reads or writes anything else in ``--out`` and keeps it
until it exits. The lock is ``flock(2)`` on the lock file: the kernel releases it when the holder's
process ends in any way (SIGKILL, OOM kill, node reboot for a local disk), so a stale lock never
blocks a resume, and no clean-up code has to run. A second writer fails at once with
:class:`RunDirLocked` (an :class:`~autospec.errors.InputError`: exit status 2 from the CLI) naming
the holder (pid, host, start time), which the holder writes into the lock file.

Shared file systems: Linux implements ``flock`` on NFS (v4, or v3 with lockd) as a POSIX lock on
the server, so two nodes exclude each other too; some other network file systems ignore locks.
The lock file stays in the directory after the run (it is a dot file, not an output); its content
is only a description of the last holder.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError

LOCK_NAME = ".autospec.lock"


class RunDirLocked(InputError):
    """The run directory is held by another live process."""


def _holder(fd: int) -> str:
    """The holder's description from the lock file ('unknown holder' if unreadable)."""
    try:
        raw = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        info = json.loads(raw)
        return f"pid {info['pid']} on host {info['host']}, started {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not written its details yet"


def _open_lock_file(out_dir: Path, what: str) -> int:
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir}: exists and is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        return os.open(out_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as err:
        reason = err.strerror or str(err)
        where = err.filename or out_dir
        raise InputError(
            f"--out {out_dir}: cannot create the run directory or its lock file for {what} ({reason}: {where})"
        ) from None


@contextlib.contextmanager
def run_lock(out_dir: os.PathLike[str] | str, what: str = "autospec train") -> Iterator[Path]:
    """Hold the run directory's lock for the duration of the block (creating the directory).

    Raises
    ------
    RunDirLocked
        Another live process holds the lock (the message names it).
    InputError
        ``out_dir`` is not a directory, or the directory / lock file cannot be created.
    """
    if not os.fspath(out_dir):
        raise InputError("--out: an empty path (it would be the working directory)")
    out = Path(out_dir)
    created = not out.exists()
    new_lock = created or not (out / LOCK_NAME).exists()
    fd = _open_lock_file(out, what)
    locked = False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise InputError(f"--out {out}: cannot lock {out / LOCK_NAME} ({err.strerror})") from None
            raise RunDirLocked(
                f"--out {out}: in use by another writer ({_holder(fd)}); one {what} per run directory at a time"
            ) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "what": what,
        }
        locked = True
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        yield out / LOCK_NAME
    except BaseException:
        if new_lock and locked:  # a failed start leaves no trace: the lock file, a directory made for it
            with contextlib.suppress(OSError):
                (out / LOCK_NAME).unlink()
                if created:
                    out.rmdir()  # only if nothing else was written
        raise
    finally:
        os.close(fd)  # closing the only descriptor releases the flock
