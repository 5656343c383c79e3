"""``autospec preprocess``: one cohort's data -> a prepared-dataset ``.npz`` (+ manifest).

Every output (the ``.npz``, the optional mean map, and a ``<output>.manifest.json`` beside each)
is written to a temporary file first and renamed only when all of them are complete, so a bad
input leaves nothing behind.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import atomic_outputs
from ..data.kinds import COHORT_KINDS as KINDS  # light module: no nilearn/pandas at parse time
from ..errors import InputError
from ..manifest import build_manifest, manifest_text

if TYPE_CHECKING:
    from nibabel import Nifti1Image

NAME = "preprocess"
HELP = "Preprocess a cohort's FreeSurfer volumes, ICA time courses or ICA spatial maps into a prepared dataset (.npz)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cohort-config",
        required=True,
        type=Path,
        metavar="FILE",
        help="YAML file with a top-level 'cohorts:' mapping",
    )
    parser.add_argument(
        "--cohort",
        metavar="NAME",
        default=None,
        help="cohort name in the config (optional when it holds one cohort)",
    )
    parser.add_argument("--kind", required=True, choices=KINDS, help="which data to prepare")
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="X.npz",
        help="prepared-dataset file to write (X.npz.manifest.json is written too)",
    )
    parser.add_argument(
        "--mean-map",
        type=Path,
        default=None,
        metavar="OUT.nii.gz",
        help="spatialmaps only: also write the group-mean reduced map (NIfTI)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")


def _configure_logging(quiet: bool) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="autospec preprocess: %(message)s")
    logging.getLogger("autospec").setLevel(logging.WARNING if quiet else logging.INFO)


def _unique(paths: Iterable[os.PathLike[str] | str]) -> list[Path]:
    seen: set[Path] = set()
    out: list[Path] = []
    for p in paths:
        p = Path(p).resolve()
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def _check_output_names(args: argparse.Namespace) -> None:
    """Refuse output names the command cannot write, before any data is read."""
    if args.out.suffix != ".npz":
        raise InputError(f"--out {args.out}: must end in .npz")
    if args.mean_map is not None:
        if args.kind != "spatialmaps":
            raise InputError(f"--mean-map is only for --kind spatialmaps, not {args.kind}")
        if not str(args.mean_map).endswith((".nii", ".nii.gz")):
            raise InputError(f"--mean-map {args.mean_map}: must end in .nii or .nii.gz")


def _mean_map_bytes(args: argparse.Namespace, mean_img: Nifti1Image | None) -> bytes | None:
    """The group-mean map as the bytes of ``--mean-map`` (gzip-compressed for .gz); None without it."""
    if args.mean_map is None:
        return None
    if mean_img is None:  # _check_output_names refuses --mean-map for every kind without a mean map
        raise InputError(f"--mean-map: --kind {args.kind} gives no group-mean map")
    data = mean_img.to_bytes()
    return gzip.compress(data, mtime=0) if str(args.mean_map).endswith(".gz") else data


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    _check_output_names(args)
    _configure_logging(args.quiet)
    # heavy imports (nilearn, sklearn) only when the command runs
    from ..data.cohort import load_cohort_config
    from ..data.covariates import covariate_records
    from ..data.dataset import manifest_path, save_dataset
    from ..data.preprocess import preprocess
    from ..data.subjects import cohort_subjects

    cfg = load_cohort_config(args.cohort_config, args.cohort)
    subs = cohort_subjects(cfg, args.kind)
    ds, mean_img = preprocess(cfg, args.kind, subs)
    mean_map_bytes = _mean_map_bytes(args, mean_img)
    inputs = _unique([args.cohort_config, *subs.input_files()])

    outputs = [out]
    if args.mean_map is not None:
        outputs.append(args.mean_map)
    manifests = [manifest_path(p) for p in outputs]
    with atomic_outputs(*outputs, *manifests) as temps:
        tmp_out, tmp_manifests = temps[: len(outputs)], temps[len(outputs) :]
        save_dataset(tmp_out[0], ds)
        if mean_map_bytes is not None:
            tmp_out[1].write_bytes(mean_map_bytes)
        manifest = build_manifest(
            "preprocess",
            inputs=inputs,
            outputs=list(zip(outputs, tmp_out)),  # hash the temporaries, record the final names
            params={**cfg.to_dict(), "kind": args.kind},
            extra={
                "cohort": cfg.name,
                "kind": args.kind,
                "subjects": list(subs.ids),
                "groups": dict(zip(subs.ids, subs.groups.loc[subs.ids].tolist())),
                "covariates": covariate_records(subs.ids, subs.covariates),
                "gift_index": subs.gift_index,
                "left_out": {k: v for k, v in subs.ignored.items() if v},
                "X_shape": list(ds.X.shape),
            },
        )
        text = manifest_text(manifest)
        for tmp in tmp_manifests:
            tmp.write_text(text)
    logging.getLogger("autospec").info(
        "%s: wrote %s (%s, X %s, %d subjects)", cfg.name, out, args.kind, tuple(ds.X.shape), ds.n
    )
    return 0
