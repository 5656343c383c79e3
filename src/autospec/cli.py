"""The ``autospec`` command line.

Sub-commands are discovered, not listed: each module in :mod:`autospec.commands` that defines
``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int`` becomes ``autospec NAME``.
Adding a command is adding one file.

Errors that are the user's (:class:`autospec.errors.InputError`) print one line naming the
file, subject or field and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import commands
from .errors import InputError


def _discover():
    found = {}
    for info in pkgutil.iter_modules(commands.__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{commands.__name__}.{info.name}")
        if all(hasattr(mod, a) for a in ("NAME", "HELP", "add_arguments", "run")):
            found[mod.NAME] = mod
    return dict(sorted(found.items()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autospec", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, mod in _discover().items():
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


#: the command line of the current invocation (for provenance), set by :func:`main`
INVOCATION: list[str] | None = None


def main(argv: list[str] | None = None) -> int:
    global INVOCATION
    INVOCATION = [sys.executable, "-m", "autospec", *(sys.argv[1:] if argv is None else argv)]
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except InputError as err:
        print(f"autospec {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
