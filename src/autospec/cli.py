"""The ``autospec`` command line.

Sub-commands are discovered, not listed: each module in :mod:`autospec.commands` that defines
``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int`` becomes ``autospec NAME``.
Adding a command is adding one file.

One error path for every command (docs/robustness.md): the user's errors print ONE line naming
the file, subject, field or argument and exit with status 2, never a traceback:

- :class:`autospec.errors.InputError` (bad files, fields, subjects), argparse errors (unknown or
  malformed arguments, integers out of range (``INT_BOUNDS``), non-finite floats);
- ``OSError`` (disk full, permission denied, a file where a directory should be, ...), naming the
  path the system names, else the command's output argument;
- ``MemoryError`` (an allocation the machine cannot make).

Anything else is a bug: one line saying so, exit status 1 (``AUTOSPEC_DEBUG=1`` re-raises it to
show the traceback). Outputs are written atomically (:mod:`autospec.atomic`), so a failed command
leaves no partial output.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import pkgutil
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import NoReturn

from . import commands
from .atomic import final_name
from .errors import InputError

#: exit status of a bad input (argument, file, field) or an environment the command cannot use
EXIT_INPUT = 2
#: exit status of an internal error (a bug: please report it)
EXIT_BUG = 1

#: inclusive bounds of integer options, by argparse ``dest``; an integer option not listed here
#: is bounded by DEFAULT_INT_BOUNDS (no command takes a count beyond it)
INT_BOUNDS: dict[str, tuple[int, int]] = {
    "seed": (0, 2**32 - 1),  # numpy and torch seeds
    "threads": (1, 1024),
    "permutations": (0, 10**7),
    "group": (-1, 10**6),
    "n_per_class": (1, 10**5),
    "n_classes": (2, 1000),
    "length": (2, 10**5),
    "n_sz": (2, 10**4),
    "n_hc": (2, 10**4),
}
DEFAULT_INT_BOUNDS = (-(2**31), 2**31 - 1)
#: argument names that hold a command's outputs (named when the OS error does not say which path)
OUTPUT_ARGS = ("out", "out_png", "out_pdf", "provenance_json", "mean_map")


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors on one line (``autospec CMD: error: ...``), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def bounded_int(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse ``type`` parsing an integer within [lo, hi] (argparse names the option)."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is out of range [{lo}, {hi}]")
        return value

    parse.__name__ = "integer"
    return parse


def finite_float() -> Callable[[str], float]:
    """An argparse ``type`` parsing a finite float (no nan, inf or 1e999; argparse names the option)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        return value

    parse.__name__ = "number"
    return parse


def _bound_numeric_options(parser: argparse.ArgumentParser) -> None:
    """Wrap every ``type=int`` / ``type=float`` option of a command with the checks above."""
    for action in parser._actions:
        if action.type is int:
            lo, hi = INT_BOUNDS.get(action.dest, DEFAULT_INT_BOUNDS)
            action.type = bounded_int(lo, hi)
        elif action.type is float:
            action.type = finite_float()


def _discover() -> dict[str, ModuleType]:
    found: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(commands.__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{commands.__name__}.{info.name}")
        if all(hasattr(mod, a) for a in ("NAME", "HELP", "add_arguments", "run")):
            found[mod.NAME] = mod
    return dict(sorted(found.items()))


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="autospec", description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)
    for name, mod in _discover().items():
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        _bound_numeric_options(p)
        p.set_defaults(_run=mod.run, _parser=p)
    return parser


def _os_error_line(err: OSError, args: argparse.Namespace) -> str:
    """``<reason>: <path>`` for an OSError; the path is the target, never an atomic temporary."""
    code = err.errno
    if code is None:  # some libraries put "[errno N]" in the text only
        m = re.search(r"\[errno (\d+)\]", str(err), re.I)
        code = int(m.group(1)) if m else None
    # the system's wording of the errno (pyarrow's strerror is "Error writing bytes to file. Detail: ...")
    reason = (os.strerror(code) if code else err.strerror) or " ".join(str(err).split()) or type(err).__name__
    paths = list(dict.fromkeys(final_name(p) for p in (err.filename, err.filename2) if p is not None))
    if isinstance(err, FileExistsError) and paths and not Path(paths[0]).is_dir():
        reason = "exists and is not a directory"  # mkdir(exist_ok=True) on a file
    if not paths:  # a library's write error: name the command's outputs instead
        outs = [f"--{a.replace('_', '-')} {getattr(args, a)}" for a in OUTPUT_ARGS if getattr(args, a, None)]
        return f"{reason} (while writing {', '.join(outs)})" if outs else reason
    return f"{reason}: {' -> '.join(paths)}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # reported by the sub-command, which knows its options (`autospec train: error: ...`)
        args._parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    # the exact command line, for provenance (handed to the steps, never read from a global)
    args.invocation = [sys.executable, "-m", "autospec", *argv]
    prog = f"autospec {args.command}"
    try:
        return int(args._run(args) or 0)
    except InputError as err:
        message, status = str(err), EXIT_INPUT
    except OSError as err:
        message, status = _os_error_line(err, args), EXIT_INPUT
    except MemoryError as err:
        message, status = f"out of memory ({err or 'an allocation failed'}); use a smaller input or model", EXIT_INPUT
    except RecursionError:
        message, status = "input nested too deeply", EXIT_INPUT
    except Exception as err:
        if os.environ.get("AUTOSPEC_DEBUG"):
            raise
        message = f"internal error {type(err).__name__}: {err} (a bug; AUTOSPEC_DEBUG=1 shows the traceback)"
        status = EXIT_BUG
    print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
