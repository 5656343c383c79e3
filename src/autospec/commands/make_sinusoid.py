"""``autospec make-sinusoid``: sinusoid sequences as a prepared dataset (.npz + manifest)."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "make-sinusoid"
HELP = (
    "Write sinusoid sequences (classes differ in frequency or phase; group high-noise has "
    "twice the noise of group low-noise) as a prepared dataset."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output .npz (a .manifest.json is written beside it)")
    p.add_argument("--n-per-class", type=int, default=256, help="sequences per class (default 256)")
    p.add_argument("--n-classes", type=int, default=2, help="number of classes (default 2)")
    p.add_argument("--length", type=int, default=64, help="time steps per sequence (default 64)")
    p.add_argument(
        "--kind",
        choices=("frequency", "phase"),
        default="frequency",
        help="what tells the classes apart (default frequency)",
    )
    p.add_argument("--noise", type=float, default=0.1, help="noise sd of group low-noise")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def run(args: argparse.Namespace) -> int:
    from ..data.dataset import write_prepared
    from ..data.sinusoid import make_sinusoids
    from ..errors import InputError

    out = Path(args.out)
    if out.suffix != ".npz":
        raise InputError(f"--out {out}: must end in .npz")
    ds = make_sinusoids(
        args.n_per_class,
        n_classes=args.n_classes,
        length=args.length,
        seed=args.seed,
        kind=args.kind,
        noise=args.noise,
    )
    params = {k: getattr(args, k) for k in ("n_per_class", "n_classes", "length", "kind", "noise", "seed")}
    write_prepared(out, ds, NAME, params)
    print(
        f"wrote {out}: {ds.n} sequences x {args.length} steps, classes "
        f"{', '.join(ds.class_names)}, groups {', '.join(ds.group_names)}"
    )
    return 0
