"""``autospec plot``: draw one figure (PNG + PDF) with its provenance sidecar.

Kinds:

- ``spectra``: ``--panel A=RUN_DIR`` (repeat; ``G=RUN1:RUN2`` for seeds) and ``--stats DIR`` or
  ``--stats G=DIR`` (group-stats outputs for the difference panels);
- ``triptych``: ``--run RUN_DIR --key layers.0.weight [--group G]``;
- ``curves``: ``--run [LABEL=]RUN_DIR`` (repeat);
- ``brain``: ``--map NAME=F.nii.gz`` (repeat) or ``--dataset X.npz``.

``--rule``, ``--wildcards k=v,...``, ``--params k=v,...`` and ``--config FILE`` go into the
sidecar, with the exact command line.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import InputError

NAME = "plot"
HELP = "Draw a figure (spectra, triptych, curves or brain) as PNG + PDF with a provenance sidecar."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", required=True, choices=("spectra", "triptych", "curves", "brain"))
    parser.add_argument("--out-png", type=Path, default=None, metavar="F.png")
    parser.add_argument("--out-pdf", type=Path, default=None, metavar="F.pdf")
    parser.add_argument(
        "--provenance-json",
        type=Path,
        default=None,
        metavar="F",
        help="where to write the provenance sidecar (default: <png or pdf>.prov.json)",
    )
    parser.add_argument(
        "--panel",
        action="append",
        default=[],
        metavar="LABEL=DIR[:DIR...]",
        help="spectra: a panel and its run directory (several, ':'-separated, = seeds)",
    )
    parser.add_argument(
        "--stats",
        action="append",
        default=[],
        metavar="[LABEL=]DIR",
        help="spectra: group-stats output directory (for all difference panels, or one)",
    )
    parser.add_argument(
        "--diff-panels", default="G,H", metavar="G,H", help="spectra: labels drawn as group-difference panels"
    )
    parser.add_argument("--summary", default="log_nuclear", choices=("log_nuclear", "log_sigma1", "log_erank"))
    parser.add_argument(
        "--test",
        default=None,
        choices=("subject_maxt_tests", "subject_tests", "seed_tests", "paper_step_tests"),
        help="spectra: which test marks epochs (default: the recommended subject-level max-|t| test, "
        "where it is valid inference; otherwise no markers)",
    )
    parser.add_argument(
        "--effect",
        type=float,
        default=1.0,
        metavar="E",
        help="spectra: planted effect whose measured power the caption quotes (default 1, the demo cohort's)",
    )
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--group-names", default=None, metavar="A,B,...")
    parser.add_argument("--run", action="append", default=[], metavar="[LABEL=]DIR")
    parser.add_argument("--key", default=None, help="triptych: the weight, e.g. layers.0.weight")
    parser.add_argument("--group", type=int, default=-1, help="triptych: group id (-1 = whole batch)")
    parser.add_argument("--map", action="append", default=[], metavar="NAME=F.nii.gz")
    parser.add_argument("--dataset", type=Path, default=None, metavar="X.npz")
    parser.add_argument("--rule", default=None, help="workflow rule that made the figure (recorded)")
    parser.add_argument("--wildcards", default=None, metavar="k=v,...")
    parser.add_argument("--params", default=None, metavar="k=v,...")
    parser.add_argument(
        "--config", type=Path, default=None, metavar="FILE", help="resolved config file whose sha256 is recorded"
    )


def _labelled(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise InputError(f"{what}: expected LABEL=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _spectra(args: argparse.Namespace, common: dict[str, Any]) -> Path:
    from .. import figures
    from .group_stats import parse_group_names

    if not args.panel:
        raise InputError("--kind spectra needs at least one --panel LABEL=DIR")
    panels = {k: [Path(p) for p in v.split(":")] for k, v in _labelled(args.panel, "--panel").items()}
    diff_labels = [s.strip() for s in args.diff_panels.split(",") if s.strip()]
    plain = [s for s in args.stats if "=" not in s]
    if len(plain) > 1:
        raise InputError("--stats: give one unlabelled DIR (for all difference panels) or LABEL=DIR")
    stats = {lab: Path(plain[0]) for lab in diff_labels} if plain else {}
    stats.update({k: Path(v) for k, v in _labelled([s for s in args.stats if "=" in s], "--stats").items()})
    return figures.spectra_figure(
        panels,
        stats or None,
        args.out_png,
        args.out_pdf,
        diff_labels=diff_labels,
        summary=args.summary,
        test=args.test,
        alpha=args.alpha,
        effect=args.effect,
        group_names=parse_group_names(args.group_names),
        **common,
    )


def run(args: argparse.Namespace) -> int:
    from ..provenance.sidecar import current_command
    from .group_stats import parse_mapping

    if args.out_png is None and args.out_pdf is None:
        raise InputError("give --out-png and/or --out-pdf")
    if args.config is not None and not args.config.is_file():
        raise InputError(f"--config {args.config}: file not found")
    prov = {
        "rule": args.rule,
        "wildcards": parse_mapping(args.wildcards, "--wildcards"),
        "params": parse_mapping(args.params, "--params"),
        "config": args.config,
        "command": current_command(args.invocation) if getattr(args, "invocation", None) else None,
    }
    common = {"provenance": prov, "sidecar_path": args.provenance_json}
    from .. import figures

    if args.kind == "spectra":
        side = _spectra(args, common)
    elif args.kind == "triptych":
        if len(args.run) != 1 or args.key is None:
            raise InputError("--kind triptych needs one --run DIR and --key")
        side = figures.layer_triptych(
            args.run[0].split("=")[-1], args.key, args.out_png, args.out_pdf, group=args.group, **common
        )
    elif args.kind == "curves":
        if not args.run:
            raise InputError("--kind curves needs at least one --run [LABEL=]DIR")
        runs = {(r.split("=", 1)[0] if "=" in r else Path(r).name): r.split("=", 1)[-1] for r in args.run}
        side = figures.training_curves(runs, args.out_png, args.out_pdf, **common)
    else:
        if bool(args.map) == (args.dataset is not None):
            raise InputError("--kind brain needs either --map NAME=F (repeat) or --dataset X.npz")
        source = _labelled(args.map, "--map") if args.map else args.dataset
        side = figures.brain_maps(source, args.out_png, args.out_pdf, **common)
    for p in (args.out_png, args.out_pdf, side):
        if p is not None:
            print(p)
    return 0
