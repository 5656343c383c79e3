"""``autospec audit FIGURE``: re-hash a figure's whole lineage back to the raw files.

Prints the lineage tree (indented) and exits 0 when every file still has the sha256 recorded
for it, else 1 with a last line naming the first file that changed or is missing and what was
expected. Also checks that the figure's embedded provenance ID matches its sidecar.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "audit"
HELP = "Check a figure's (or any output's) provenance chain: re-hash every input back to the raw files."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", type=Path, metavar="FIGURE", help="a .png/.pdf figure, or any output with a manifest")
    parser.add_argument(
        "--sidecar",
        type=Path,
        default=None,
        metavar="F",
        help="provenance sidecar (default: the one named in the figure, else FIGURE.prov.json)",
    )
    parser.add_argument(
        "--root",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="extra directory to resolve relative paths against (repeatable)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the verdict")


def run(args: argparse.Namespace) -> int:
    from ..provenance import audit

    rep = audit(args.target, sidecar=args.sidecar, roots=args.root)
    if not args.quiet:
        for line in rep.lines:
            print(line)
    if rep.ok:
        print(f"audit ok: {rep.files_checked} files re-hashed, all match")
        return 0
    print(f"audit FAILED: {rep.first_problem}", file=sys.stderr)
    if len(rep.problems) > 1:
        print(f"({len(rep.problems) - 1} further problem(s) listed above)", file=sys.stderr)
    return 1
