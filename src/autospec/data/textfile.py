"""Inputs as users' tools leave them: text files (UTF-8 with or without a BOM, LF or CRLF line
ends) and the directories a config field names."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError

MAX_TEXT_BYTES = 256 * 1024 * 1024


def read_text(path: os.PathLike[str] | str, what: str) -> str:
    """The file's text: a UTF-8 BOM dropped, CRLF/CR turned into LF.

    Raises
    ------
    InputError
        Missing, unreadable (a directory, no permission), larger than 256 MiB, or not UTF-8
        text; the message names the file and ``what`` it is.
    """
    p = Path(path)
    try:
        if p.stat().st_size > MAX_TEXT_BYTES:
            raise InputError(f"{p}: {what} is larger than {MAX_TEXT_BYTES >> 20} MiB; refused")
        raw = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{p}: {what} not found") from None
    except IsADirectoryError:
        raise InputError(f"{p}: {what} is a directory, not a file") from None
    except OSError as err:
        raise InputError(f"{p}: cannot read {what} ({err.strerror or err})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{p}: {what} is not UTF-8 text (byte {err.start})") from None
    if "\x00" in text:
        raise InputError(f"{p}: {what} contains NUL bytes (not a text file)")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_text_lines(path: os.PathLike[str] | str, what: str) -> list[str]:
    """The lines of :func:`read_text` (no line-end characters)."""
    return read_text(path, what).split("\n")


def list_directory(path: os.PathLike[str] | str, field: str) -> list[str]:
    """The sorted entry names of the directory a config ``field`` names.

    Raises
    ------
    InputError
        Missing, not a directory, or unreadable; the message names ``field`` and the path.
    """
    d = Path(path)
    try:
        return sorted(os.listdir(d))
    except FileNotFoundError:
        raise InputError(f"field {field}: {d} not found") from None
    except NotADirectoryError:
        raise InputError(f"field {field}: {d} is not a directory") from None
    except OSError as err:
        raise InputError(f"field {field}: cannot list {d} ({err.strerror or err})") from None
