"""Hostile inputs, each with the one line it must be refused with: the source of docs/robustness.md.

Every case runs the real code path a user hits (the ``autospec`` command line in-process, or in a
subprocess where the case needs a full disk, dropped privileges or a second process) and returns
(exit status, stderr). ``tests/test_hostile_inputs.py`` checks each case: the exit status, ONE
line (audit: the first line) matching ``expect``, no traceback; ``scripts/robustness_doc.py``
writes the table of docs/robustness.md from the same outcomes (a test checks it is current).

One module on purpose (longer than the project's usual 400 lines): it is a table, read top to
bottom by the doc generator in the order the doc shows it; a new case is a few lines in its group.

Messages are normalised for the doc: the case's temporary directory becomes ``<tmp>``, and the
pid, host and time of a lock holder become ``<pid>``, ``<host>``, ``<time>``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


@dataclass(frozen=True)
class Case:
    id: str
    group: str
    what: str
    run: Callable[[Path], tuple[int, str]]
    expect: str
    status: int = 2
    needs: str | None = None  # "unshare" (a private tmpfs) or "no-dac" (permission bits enforced)


CASES: list[Case] = []
GROUPS = {
    "yaml": "YAML files (run config shown; cohort and workflow configs use the same loader)",
    "run": "Run config fields (`autospec train --config`)",
    "args": "Command-line arguments",
    "fs": "Files, directories, disks",
    "workflow": "Workflow config (`snakemake`, `autospec check-config`)",
    "audit": "Damage `autospec audit` reports (exit 1, first line shown)",
}


def case(id: str, group: str, what: str, expect: str, *, status: int = 2, needs: str | None = None):
    def register(fn: Callable[[Path], tuple[int, str]]):
        CASES.append(Case(id, group, what, fn, expect, status, needs))
        return fn

    return register


# ------------------------------------------------------------------------------ runners
def cli(*argv: str | Path) -> tuple[int, str]:
    """``autospec ARGV`` in-process: (exit status, stderr); argparse exits are caught."""
    from autospec.cli import main

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:
            rc = int(exc.code or 0)
    return rc, err.getvalue()


def cli_proc(argv: list[str], wrapper: list[str] = (), cwd: Path | None = None, timeout=120) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [*wrapper, PY, "-m", "autospec", *argv],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )
    return proc.returncode, proc.stderr + proc.stdout


def no_dac() -> list[str]:
    """A command prefix under which permission bits bind (root loses its override), or [] if not root."""
    if os.geteuid() != 0:
        return []
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", "--"]


def available(need: str | None) -> bool:
    """Can this machine run a case that needs ``need``?"""
    if need is None:
        return True
    if need == "unshare":
        if shutil.which("unshare") is None:
            return False
        probe = ["unshare", "-rm", "sh", "-c", "d=$(mktemp -d) && mount -t tmpfs -o size=8k tmpfs $d"]
    elif need == "no-dac":
        if os.geteuid() != 0:
            return True
        if shutil.which("setpriv") is None:
            return False
        probe = [*no_dac(), "sh", "-c", "d=$(mktemp -d) && chmod 500 $d && ! touch $d/x 2>/dev/null"]
    else:
        raise ValueError(need)
    try:
        return subprocess.run(probe, check=False, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def on_full_disk(mnt: Path, argv: list[str], size: str = "16k") -> tuple[int, str]:
    """``autospec ARGV`` with ``mnt`` a private tmpfs of ``size``; what is left there is listed after."""
    script = 'mount -t tmpfs -o size="$1" tmpfs "$2" || exit 99; shift 2; "$@"; rc=$?; echo "LEFT: $(ls -A "$MNT")"; exit $rc'
    mnt.mkdir(parents=True, exist_ok=True)
    env_mnt = ["env", f"MNT={mnt}"]
    return cli_proc(argv, ["unshare", "-rm", *env_mnt, "sh", "-c", script, "sh", size, str(mnt)])


def check_config(tmp: Path, change: dict | str) -> tuple[int, str]:
    """``autospec check-config`` of the repository's workflow with one extra config file."""
    extra = tmp / "extra.yaml"
    extra.write_text(change if isinstance(change, str) else yaml.safe_dump(change, allow_unicode=True))
    with contextlib.chdir(tmp):
        return cli("check-config", "--workflow", REPO, "--configfile", extra)


def dataset(tmp: Path, n=16, d=8) -> Path:
    from autospec.data.dataset import Dataset, save_dataset

    rng = np.random.default_rng(0)
    path = tmp / "data" / "d.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_dataset(
        path,
        Dataset(
            X=rng.normal(size=(n, d)).astype(np.float32),
            y=np.arange(n) % 2,
            groups=(np.arange(n) // 2) % 2,
            subject_ids=[f"s{i}" for i in range(n)],
            class_names=["a", "b"],
            group_names=["g0", "g1"],
            meta={"kind": "volumes"},
        ),
    )
    return path


def run_config(tmp: Path, text: str | None = None, **training) -> Path:
    """A valid run.yaml (or ``text`` verbatim) beside a tiny dataset."""
    data = dataset(tmp)
    cfg = tmp / "run.yaml"
    if text is None:
        doc = {
            "data": str(data),
            "model": {"family": "mlp", "hidden": [4]},
            "training": {"epochs": 2, "device": "cpu", "checkpoint_every": 0, **training},
        }
        text = yaml.safe_dump(doc)
    cfg.write_text(text.replace("DATA", str(data)))
    return cfg


def train_with(tmp: Path, text: str) -> tuple[int, str]:
    return cli("train", "--config", run_config(tmp, text), "--out", tmp / "run", "--no-progress")


def bomb(depth: int = 9, mapping: bool = False) -> str:
    """A 'billion laughs' document: 10 ** depth values from a few hundred bytes."""
    if mapping:
        lines = ["  a0: &a0 {" + ", ".join(f"k{j}: x" for j in range(10)) + "}"]
        lines += [f"  a{i}: &a{i} {{" + ", ".join(f"k{j}: *a{i - 1}" for j in range(10)) + "}" for i in range(1, depth)]
    else:
        lines = ["  a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        lines += [f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, depth)]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ normalisation
def normalise(text: str, tmp: Path) -> str:
    for d, name in (*((c, "<chain>") for c in _CHAINS.values()), (tmp, "<tmp>"), (tmp.parent, "<root>")):
        text = text.replace(str(d.resolve()), name).replace(str(d), name)
    text = re.sub(r"pid \d+ on host \S+, started [0-9T:+-]+", "pid <pid> on host <host>, started <time>", text)
    return re.sub(r"\b[0-9a-f]{64}\b", "<sha>", text)


def message(status: int, stderr: str) -> str:
    """The line a case is judged by: the error line (audit: its first line); warnings logged before it aside."""
    lines = [ln for ln in stderr.splitlines() if ERROR_LINE.match(ln)]
    return lines[0] if lines else ""


#: the lines that report a failure (anything else on stderr is a logged warning or progress)
ERROR_LINE = re.compile(r"^(autospec( [\w-]+)?: error: |audit FAILED: |\(\d+ further problem)")


# ============================================================================== the cases
# ------------------------------------------------------------------ YAML
RUN_HEAD = "data: DATA\nmodel:\n  family: mlp\n"


@case(
    "yaml-bomb-list",
    "yaml",
    "a 600-byte run.yaml: nested list anchors in `model.options` (10⁹ values)",
    r"run config refused: more than 100,000 values once its \d+ aliases are expanded \(a YAML bomb\?\)",
)
def _(tmp):
    return train_with(tmp, "bombs:\n" + bomb() + "\n" + RUN_HEAD + "  options:\n    x: [*a8, *a8]\n")


@case(
    "yaml-bomb-mapping",
    "yaml",
    "run.yaml: nested mapping anchors (10⁹ values)",
    r"run config refused: more than 100,000 values once its \d+ aliases are expanded",
)
def _(tmp):
    return train_with(tmp, "bombs:\n" + bomb(mapping=True) + "\n" + RUN_HEAD + "  options: *a8\n")


@case("yaml-recursive", "yaml", "a recursive alias (`x: &a [*a]`)", r"run config refused: recursive alias \(line \d+\)")
def _(tmp):
    return train_with(tmp, RUN_HEAD + "  options: {x: &a [*a]}\n")


@case(
    "yaml-deep", "yaml", "values nested 200 deep (`[[[[...]]]]`)", r"run config refused: nested deeper than 64 levels"
)
def _(tmp):
    return train_with(tmp, RUN_HEAD + "  options: {x: " + "[" * 200 + "]" * 200 + "}\n")


@case("yaml-large", "yaml", "a 3 MB run.yaml", r"run config refused: larger than 2,097,152 bytes")
def _(tmp):
    return train_with(tmp, RUN_HEAD + "# " + "x" * 3_000_000 + "\n")


@case(
    "yaml-not-utf8", "yaml", "a run.yaml in Latin-1 (not UTF-8)", r"unreadable run config \(not UTF-8 text: byte 0xe9"
)
def _(tmp):
    cfg = tmp / "run.yaml"
    cfg.write_bytes("data: d.npz  # caf\xe9\nmodel: {family: mlp}\n".encode("latin-1"))
    return cli("train", "--config", cfg, "--out", tmp / "run")


@case(
    "yaml-duplicate-key",
    "yaml",
    "the same key twice (`epochs: 3` ... `epochs: 30`)",
    r"run config refused: duplicate key 'epochs' \(lines \d+ and \d+\)",
)
def _(tmp):
    return train_with(tmp, RUN_HEAD + "training:\n  epochs: 3\n  lr: 0.01\n  epochs: 30\n")


@case(
    "yaml-nul",
    "yaml",
    'a NUL character in a path (`data: "d\\0.npz"`)',
    r"run config refused: a NUL character in a value \(line 1\)",
)
def _(tmp):
    return train_with(tmp, 'data: "d\\0.npz"\nmodel: {family: mlp}\n')


@case(
    "yaml-python-tag",
    "yaml",
    "a tag that would build a Python object (`!!python/object/apply:os.system`)",
    r"unreadable run config \(invalid YAML: could not determine a constructor for the tag .*python/object/apply",
)
def _(tmp):
    return train_with(tmp, RUN_HEAD + "  options: !!python/object/apply:os.system ['touch PWNED']\n")


@case(
    "yaml-syntax",
    "yaml",
    "broken YAML (an unclosed `[`)",
    r"unreadable run config \(invalid YAML: .* \(line \d+, column \d+\)\)",
)
def _(tmp):
    return train_with(tmp, RUN_HEAD + "  hidden: [4, 8\n")


@case("yaml-tab", "yaml", "a tab used for indentation", r"unreadable run config \(invalid YAML: found character '\\t'")
def _(tmp):
    return train_with(tmp, RUN_HEAD + "training:\n\tepochs: 3\n")


@case("yaml-empty", "yaml", "an empty run.yaml", r"run config .*must be a mapping, got NoneType")
def _(tmp):
    return train_with(tmp, "")


@case("yaml-list", "yaml", "a run.yaml that is a list", r"run config .*must be a mapping, got list")
def _(tmp):
    return train_with(tmp, "- data: DATA\n")


@case("yaml-missing", "yaml", "`--config` names no file", r"<tmp>/none.yaml: run config file not found")
def _(tmp):
    return cli("train", "--config", tmp / "none.yaml", "--out", tmp / "run")


@case("yaml-directory", "yaml", "`--config` names a directory", r"unreadable run config \(a directory, not a file\)")
def _(tmp):
    return cli("train", "--config", tmp, "--out", tmp / "run")


@case(
    "cohort-bomb",
    "yaml",
    "cohort.yaml with `exclude: [*a8]` (a bomb in a cohort config)",
    r"cohort config refused: more than 100,000 values once its \d+ aliases are expanded",
)
def _(tmp):
    cfg = tmp / "cohort.yaml"
    cfg.write_text("defs:\n" + bomb() + "\ncohorts:\n  c:\n    phenotype: p.csv\n    exclude: [*a8]\n")
    return cli("preprocess", "--cohort-config", cfg, "--kind", "volumes", "--out", tmp / "x.npz")


# ------------------------------------------------------------------ run config fields
def _train_field(tmp, **training):
    return cli("train", "--config", run_config(tmp, **training), "--out", tmp / "run", "--no-progress")


def _train_doc(tmp, doc_text):
    return train_with(tmp, doc_text)


for _id, _what, _training, _expect in [
    (
        "seed-2^32",
        "`training.seed: 4294967296` (numpy seeds are < 2³²)",
        {"seed": 2**32},
        r"run config field training.seed: 4294967296 is greater than the maximum of 4294967295",
    ),
    (
        "seed-negative",
        "`training.seed: -1`",
        {"seed": -1},
        r"run config field training.seed: -1 is less than the minimum of 0",
    ),
    (
        "epochs-zero",
        "`training.epochs: 0`",
        {"epochs": 0},
        r"run config field training.epochs: 0 is less than the minimum of 1",
    ),
    (
        "epochs-huge",
        "`training.epochs: 10000001`",
        {"epochs": 10_000_001},
        r"run config field training.epochs: .* greater than the maximum",
    ),
    (
        "epochs-float",
        "`training.epochs: 3.5`",
        {"epochs": 3.5},
        r"run config field training.epochs: 3.5 is not of type 'integer'",
    ),
    ("lr-negative", "`training.lr: -1`", {"lr": -1}, r"run config field training.lr: -1 is less than the minimum of 0"),
    (
        "lr-inf",
        "`training.lr: .inf`",
        {"lr": float("inf")},
        r"run config field training.lr: inf is not a finite number",
    ),
    ("lr-text", "`training.lr: fast`", {"lr": "fast"}, r"run config field training.lr: 'fast' is not of type 'number'"),
    (
        "threads-zero",
        "`training.threads: 0`",
        {"threads": 0},
        r"run config field training.threads: 0 is less than the minimum of 1",
    ),
    (
        "threads-huge",
        "`training.threads: 100000`",
        {"threads": 100_000},
        r"run config field training.threads: 100000 is greater than the maximum of 1024",
    ),
    (
        "unknown-field",
        "`training.epoch: 3` (a typo)",
        {"epoch": 3},
        r"run config field training.epoch: unknown field \(allowed: ",
    ),
    (
        "device-unknown",
        "`training.device: tpu`",
        {"device": "tpu"},
        r"run config field training.device: 'tpu' is not one of",
    ),
]:
    case(_id, "run", _what, _expect)(lambda tmp, t=_training: _train_field(tmp, **t))

for _id, _what, _text, _expect in [
    (
        "hidden-1e11",
        "`model.hidden: [1e11]` (a float, once YAML 1.2 reads it)",
        RUN_HEAD + "  hidden: [1e11]\n",
        r"run config field model.hidden\[0\]: 100000000000.0 is not of type 'integer'",
    ),
    (
        "hidden-huge",
        "`model.hidden: [2097152]`",
        RUN_HEAD + "  hidden: [2097152]\n",
        r"run config field model.hidden\[0\]: 2097152 is greater than the maximum of 1048576",
    ),
    (
        "family-unknown",
        "`model.family: resnet`",
        "data: DATA\nmodel: {family: resnet}\n",
        r"run config field model.family: 'resnet' is not one of",
    ),
    ("data-missing", "no `data:` field", "model: {family: mlp}\n", r"run config field data: required field is missing"),
]:
    case(_id, "run", _what, _expect)(lambda tmp, t=_text: _train_doc(tmp, t))


# ------------------------------------------------------------------ command-line arguments
for _id, _what, _argv, _expect in [
    (
        "arg-seed-2^32",
        "`make-sinusoid --seed 4294967296`",
        ["make-sinusoid", "--out", "{tmp}/x.npz", "--seed", "4294967296"],
        r"argument --seed: 4294967296 is out of range \[0, 4294967295\]",
    ),
    (
        "arg-seed-negative",
        "`make-sinusoid --seed -1`",
        ["make-sinusoid", "--out", "{tmp}/x.npz", "--seed=-1"],
        r"argument --seed: -1 is out of range",
    ),
    (
        "arg-seed-text",
        "`prepare-mnist --seed abc`",
        ["prepare-mnist", "--out", "{tmp}/x.npz", "--seed", "abc"],
        r"argument --seed: expected an integer, got 'abc'",
    ),
    (
        "arg-nan",
        "`make-sinusoid --noise nan`",
        ["make-sinusoid", "--out", "{tmp}/x.npz", "--noise", "nan"],
        r"argument --noise: 'nan' is not a finite number",
    ),
    (
        "arg-inf",
        "`make-sinusoid --noise 1e999`",
        ["make-sinusoid", "--out", "{tmp}/x.npz", "--noise", "1e999"],
        r"argument --noise: '1e999' is not a finite number",
    ),
    (
        "arg-huge-count",
        "`make-sinusoid --length 10000000000`",
        ["make-sinusoid", "--out", "{tmp}/x.npz", "--length", "10000000000"],
        r"argument --length: 10000000000 is out of range \[2, 100000\]",
    ),
    (
        "arg-permutations",
        "`group-stats --permutations -5`",
        ["group-stats", "--spectra", "{tmp}/s.parquet", "--out", "{tmp}/st", "--permutations=-5"],
        r"argument --permutations: -5 is out of range",
    ),
    (
        "arg-threads",
        "`train --threads 0`",
        ["train", "--config", "{tmp}/r.yaml", "--out", "{tmp}/run", "--threads", "0"],
        r"argument --threads: 0 is out of range \[1, 1024\]",
    ),
    (
        "arg-unknown",
        "an unknown option (`train --epochs 3`)",
        ["train", "--config", "{tmp}/r.yaml", "--out", "{tmp}/r", "--epochs", "3"],
        r"unrecognized arguments: --epochs 3",
    ),
    (
        "arg-missing",
        "a required option left out (`train --config r.yaml`)",
        ["train", "--config", "{tmp}/r.yaml"],
        r"the following arguments are required: --out",
    ),
    (
        "arg-choice",
        "`preprocess --kind brains`",
        ["preprocess", "--cohort-config", "{tmp}/c.yaml", "--kind", "brains", "--out", "{tmp}/x.npz"],
        r"argument --kind: invalid choice: 'brains'",
    ),
    (
        "arg-suffix",
        "`make-sinusoid --out x.csv` (not .npz)",
        ["make-sinusoid", "--out", "{tmp}/x.csv"],
        r"--out <tmp>/x.csv: must end in .npz",
    ),
]:
    case(_id, "args", _what, _expect)(lambda tmp, a=_argv: cli(*[s.replace("{tmp}", str(tmp)) for s in a]))


# ------------------------------------------------------------------ files, directories, disks
@case("out-is-file", "fs", "`train --out` names an existing file", r"--out <tmp>/run: exists and is not a directory")
def _(tmp):
    (tmp / "run").write_text("not a directory\n")
    return cli("train", "--config", run_config(tmp), "--out", tmp / "run")


@case(
    "out-under-file", "fs", "`make-sinusoid --out f/x.npz` where f is a file", r"exists and is not a directory: <tmp>/f"
)
def _(tmp):
    (tmp / "f").write_text("a file\n")
    return cli("make-sinusoid", "--out", tmp / "f" / "x.npz", "--n-per-class", "4")


@case("out-is-directory", "fs", "`make-sinusoid --out x.npz` where x.npz is a directory (EISDIR)", r"Is a directory: ")
def _(tmp):
    (tmp / "x.npz").mkdir()
    return cli("make-sinusoid", "--out", tmp / "x.npz", "--n-per-class", "4")


@case(
    "out-unwritable",
    "fs",
    "`make-sinusoid --out` in a read-only directory (EACCES)",
    r"Permission denied: <tmp>/ro/",
    needs="no-dac",
)
def _(tmp):
    (tmp / "ro").mkdir()
    (tmp / "ro").chmod(0o555)
    return cli_proc(["make-sinusoid", "--out", str(tmp / "ro" / "x.npz"), "--n-per-class", "4"], no_dac())


@case(
    "train-out-unwritable",
    "fs",
    "`train --out` inside a read-only directory (EACCES)",
    r"--out <tmp>/ro/run: cannot create the run directory or its lock file for autospec train \(Permission denied",
    needs="no-dac",
)
def _(tmp):
    cfg = run_config(tmp)
    (tmp / "ro").mkdir()
    (tmp / "ro").chmod(0o555)
    return cli_proc(["train", "--config", str(cfg), "--out", str(tmp / "ro" / "run")], no_dac())


@case(
    "subjects-dir-unreadable",
    "fs",
    "`preprocess` of a cohort whose FreeSurfer SUBJECTS_DIR is unreadable",
    r"field freesurfer.subjects_dir: cannot list <tmp>/cohort/freesurfer \(Permission denied\)",
    needs="no-dac",
)
def _(tmp):
    from autospec.data.demo import make_demo_cohort

    make_demo_cohort(tmp / "cohort", seed=1, small=True, n_sz=3, n_hc=3, grid_mm=12)
    (tmp / "cohort" / "freesurfer").chmod(0)
    try:
        return cli_proc(
            [
                "preprocess",
                "--cohort-config",
                str(tmp / "cohort" / "cohort.yaml"),
                "--kind",
                "volumes",
                "--out",
                str(tmp / "v.npz"),
            ],
            no_dac(),
        )
    finally:
        (tmp / "cohort" / "freesurfer").chmod(0o755)


@case(
    "disk-full-data",
    "fs",
    "disk full while `make-sinusoid` writes (ENOSPC); nothing left behind",
    r"No space left on device",
    needs="unshare",
)
def _(tmp):
    argv = ["make-sinusoid", "--out", str(tmp / "mnt" / "x.npz"), "--n-per-class", "512", "--length", "256"]
    return on_full_disk(tmp / "mnt", argv)


@case(
    "disk-full-manifest",
    "fs",
    "disk full after `make-sinusoid` wrote its data, before its manifest: no data without a manifest",
    r"No space left on device",
    needs="unshare",
)
def _(tmp):
    argv = ["make-sinusoid", "--out", str(tmp / "mnt" / "x.npz"), "--n-per-class", "8", "--length", "64"]
    return on_full_disk(tmp / "mnt", argv, size="8k")


@case(
    "disk-full-train",
    "fs",
    "disk full while `train` writes its run directory (ENOSPC); no outputs left",
    r"No space left on device",
    needs="unshare",
)
def _(tmp):
    cfg = run_config(tmp, epochs=30)
    return on_full_disk(
        tmp / "mnt", ["train", "--config", str(cfg), "--out", str(tmp / "mnt" / "run"), "--no-progress"]
    )


@case(
    "disk-full-preprocess",
    "fs",
    "disk full while `preprocess` writes a cohort's data (ENOSPC); nothing left behind",
    r"No space left on device",
    needs="unshare",
)
def _(tmp):
    chain = cohort_chain(tmp)  # its generated cohort, read only
    argv = [
        "preprocess",
        "--cohort-config",
        str(chain / "cohorts/c/cohort.yaml"),
        "--kind",
        "timecourses",
        "--out",
        str(tmp / "mnt" / "t.npz"),
        "-q",
    ]
    return on_full_disk(tmp / "mnt", argv, size="8k")


@case(
    "second-writer",
    "fs",
    "a second `autospec train` on a run directory in use",
    r"--out <tmp>/run: in use by another writer \(pid <pid> on host <host>, started <time>\); one autospec train per run directory at a time",
)
def _(tmp):
    cfg = run_config(tmp, epochs=100_000)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    first = subprocess.Popen(
        [PY, "-m", "autospec", "train", "--config", str(cfg), "--out", str(tmp / "run"), "--no-progress"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        lock, deadline = tmp / "run" / ".autospec.lock", time.monotonic() + 60
        while not (lock.exists() and lock.read_text().strip()):
            if first.poll() is not None or time.monotonic() > deadline:
                return 99, "the first writer did not start"
            time.sleep(0.01)
        return cli("train", "--config", cfg, "--out", tmp / "run")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)


# ------------------------------------------------------------------ workflow config
for _id, _what, _change, _expect in [
    (
        "wf-results-brace",
        "`results: out/{x}` (a brace: a Snakemake wildcard)",
        {"results": "out/{x}"},
        r"config field results: 'out/\{x\}' contains a brace, which Snakemake reads as a wildcard",
    ),
    (
        "wf-results-newline",
        "`results` with a newline",
        {"results": "out\nx"},
        r"config field results: contains the control character '\\n'; refused",
    ),
    ("wf-results-colon", "`results: a:b`", {"results": "a:b"}, r"config field results: 'a:b' contains ':'"),
    (
        "wf-results-here",
        "`results: .` (the working directory)",
        {"results": "."},
        r"config field results: '.' is the working directory or above it",
    ),
    ("wf-study-comma", "`study: a,b`", {"study": "a,b"}, r"config field study: 'a,b' contains ','"),
    (
        "wf-study-control",
        "`study` with an escape character",
        {"study": "a\x1bb"},
        r"config field study: contains the control character '\\x1b'",
    ),
    (
        "wf-cohort-path-newline",
        "a cohort `config:` path with a newline",
        {"cohorts": {"c": {"config": "a\nb.yaml"}}},
        r"config field cohorts.c.config: contains the control character '\\n'",
    ),
    (
        "wf-cohort-both",
        "a cohort with both `config:` and `generate:`",
        {"cohorts": {"c": {"config": "c.yaml", "generate": {}}}},
        r"config field cohorts.c: give exactly one of `config:` \(a cohort.yaml file\) or `generate:`",
    ),
    (
        "wf-cohort-name",
        "a cohort key with a space",
        {"cohorts": {"my cohort": {"config": "c.yaml"}}},
        r"config field cohorts: 'my cohort' does not match",
    ),
    (
        "wf-cohort-name-field",
        "`cohorts.c.name: ../x`",
        {"cohorts": {"c": {"config": "c.yaml", "name": "../x"}}},
        r"config field cohorts.c.name: '../x' does not match",
    ),
    (
        "wf-seed",
        "`training.seed: 3` (seeds come from `seeds`)",
        {"training": {"seed": 3}},
        r"config field training.seed: set by the top-level `seeds` list \(one run per seed\), not here",
    ),
    (
        "wf-groups",
        "`recording.groups: false`",
        {"recording": {"groups": False}},
        r"config field recording.groups: always true in the workflow",
    ),
    (
        "wf-seeds-2^32",
        "`seeds: [4294967296]`",
        {"seeds": [2**32]},
        r"config field seeds\[0\]: 4294967296 is greater than the maximum of 4294967295",
    ),
    (
        "wf-epochs",
        "`training.epochs: 0`",
        {"training": {"epochs": 0}},
        r"config field training.epochs: 0 is less than the minimum of 1",
    ),
    (
        "wf-lr-nan",
        "`training.lr: .nan`",
        {"training": {"lr": float("nan")}},
        r"config field training.lr: nan is not a finite number",
    ),
    (
        "wf-hidden",
        "`panels.A.hidden: [1e11]`",
        "panels: {A: {task: autoencode, hidden: [1e11]}}",
        r"config field panels.A.hidden\[0\]: 1e\+11 is not of type 'integer'|config field panels.A.hidden\[0\]: 100000000000.0 is not of type 'integer'",
    ),
    (
        "wf-unknown",
        "`trainng:` (a typo at the top level)",
        {"trainng": {"epochs": 3}},
        r"config field trainng: unknown field \(allowed: ",
    ),
    (
        "wf-panel",
        "a pair drawing panel `Z`, which does not exist",
        {"experiments": {"mnist": {"mlp": {"panels": ["Z"]}}}},
        r"config field experiments.mnist.mlp.panels: no panel 'Z'",
    ),
    (
        "wf-name-clash",
        "a data set named like a cohort",
        {"datasets": {"demo": {"kind": "sinusoid"}}},
        r"config field datasets.demo: also a cohort's name; names must be unique",
    ),
    (
        "wf-override-epochs",
        "`experiments.mnist.mlp.training.epochs: 0`",
        {"experiments": {"mnist": {"mlp": {"training": {"epochs": 0}}}}},
        r"config field experiments.mnist.mlp.training.epochs: 0 is less than the minimum of 1",
    ),
    (
        "wf-override-seed",
        "`experiments.mnist.mlp.training.seed: 1`",
        {"experiments": {"mnist": {"mlp": {"training": {"seed": 1}}}}},
        r"config field experiments.mnist.mlp.training.seed: unknown field \(allowed: ",
    ),
    (
        "wf-resources-default",
        "`resources.default` (moved to the profiles)",
        {"resources": {"default": {"mem_mb": 1000}}},
        r"config field resources.default: unknown field \(allowed: max_runtime, train\)",
    ),
    (
        "wf-grid",
        "`generate.grid_mm: 1` (finer than NeuroMark's 3 mm)",
        {"cohorts": {"demo": {"generate": {"grid_mm": 1}}}},
        r"config field cohorts.demo.generate.grid_mm: 1 is less than the minimum of 3",
    ),
    (
        "wf-idx",
        "MNIST `idx_images` without `idx_labels`",
        {"datasets": {"mnist": {"idx_images": "i.idx"}}},
        r"config field datasets.mnist: give both idx_images and idx_labels, or neither",
    ),
    (
        "wf-nothing",
        "every model switched off",
        "experiments: {mnist: {mlp: {enabled: false}, cnn2d: {enabled: false}}, sinusoid: {elman: {enabled: false}}, "
        "volumes: {mlp: {enabled: false}}, timecourses: {lstm: {enabled: false}, bert: {enabled: false}, cnn1d: {enabled: false}, "
        "cnn2d: {enabled: false}}, "
        "spatialmaps: {cnn3d: {enabled: false}}}",
        r"config: no experiments",
    ),
    (
        "wf-bomb",
        "a workflow config file that is a YAML bomb",
        "x:\n" + bomb(),
        r"<tmp>/extra.yaml: workflow config refused: more than 20,000 values once its \d+ aliases are expanded",
    ),
    (
        "wf-yte",
        "a workflow config with `__use_yte__: true` (YTE templates run Python)",
        {"__use_yte__": True},
        r"<tmp>/extra.yaml: workflow config refused: YTE templates \(__use_yte__\) are Python code",
    ),
    (
        "wf-not-mapping",
        "a workflow config file that is a list",
        "- results: x\n",
        r"<tmp>/extra.yaml: workflow config must be a mapping, not a list",
    ),
]:
    case(_id, "workflow", _what, _expect)(lambda tmp, c=_change: check_config(tmp, c))


# ------------------------------------------------------------------ audit
_CHAINS: dict[str, Path] = {}


def figure_chain(root: Path, copy: bool = True) -> Path:
    """raw csv -> data.npz -> 2 runs -> group-stats -> spectra figure (built once, copied per case)."""
    if "figure" not in _CHAINS:
        sys.path.insert(0, str(REPO / "tests"))
        from recorded_runs import make_dataset, make_run

        from autospec.figures import spectra_figure

        base = root.parent / "figure-chain"
        base.mkdir(exist_ok=True)
        with contextlib.chdir(base):
            ds = make_dataset(Path("data") / "data.npz", effect=0.5)
            runs = [make_run(Path(f"run{s}"), ds, seed=s, epochs=3, subjects=False) for s in range(2)]
            rc, err = cli(
                "group-stats",
                "--spectra",
                *[r / "spectra.parquet" for r in runs],
                "--out",
                "stats",
                "--permutations",
                "0",
            )
            assert rc == 0, err
            fig = Path("figs") / "spectra.png"
            spectra_figure({"A": runs[0], "G": runs}, "stats", fig, fig.with_suffix(".pdf"), provenance={"rule": "fig"})
        _CHAINS["figure"] = base
    if not copy:  # the chain itself (its sidecar and manifests record absolute paths into it)
        return _CHAINS["figure"]
    dst = root / "chain"
    shutil.copytree(_CHAINS["figure"], dst)
    return dst


def cohort_chain(root: Path) -> Path:
    """A generated cohort -> preprocess -> train -> curves figure, every step by the CLI."""
    if "cohort" not in _CHAINS:
        from autospec.data.demo import make_demo_cohort

        base = root.parent / "cohort-chain"
        base.mkdir(exist_ok=True)
        with contextlib.chdir(base):
            make_demo_cohort("cohorts/c", seed=2, small=True, n_sz=3, n_hc=3, grid_mm=12)
            steps = [
                [
                    "preprocess",
                    "--cohort-config",
                    "cohorts/c/cohort.yaml",
                    "--kind",
                    "volumes",
                    "--out",
                    "c/volumes/data.npz",
                ],
                ["train", "--config", "run/run.yaml", "--out", "run", "--no-progress"],
                ["plot", "--kind", "curves", "--run", "run", "--out-png", "figs/curves.png"],
            ]
            Path("run").mkdir()
            Path("run/run.yaml").write_text(
                yaml.safe_dump(
                    {
                        "data": "../c/volumes/data.npz",
                        "model": {"family": "mlp", "hidden": [4]},
                        "training": {"epochs": 2, "device": "cpu"},
                    }
                )
            )
            for argv in steps:
                rc, err = cli(*argv)
                assert rc == 0, (argv, err)
        _CHAINS["cohort"] = base
    return _CHAINS["cohort"]


def audit_of(chain: Path, fig: str) -> tuple[int, str]:
    with contextlib.chdir(chain):
        return cli("audit", "-q", fig)


def _damage(target: str, how: Callable[[Path], None], fig: str = "figs/spectra.png", chain=figure_chain):
    def run(tmp: Path) -> tuple[int, str]:
        root = chain(tmp)
        if chain is figure_chain:  # a private copy (its manifests hold relative paths)
            how(root / target)
            # the sidecar also records absolute paths into the original chain, where the audit
            # would find the undamaged file: hide the original while the copy is audited
            original = _CHAINS["figure"]
            hidden = original.with_name(original.name + ".hidden")
            original.rename(hidden)
            try:
                return audit_of(root, fig)
            finally:
                hidden.rename(original)
        # the cohort chain's manifests hold absolute paths (train resolves its data path):
        # damage the one chain, audit, restore
        backup = tmp / "backup"
        (shutil.copytree if (root / target).is_dir() else shutil.copy2)(root / target, backup)
        try:
            how(root / target)
            return audit_of(root, fig)
        finally:
            if (root / target).is_dir():
                shutil.rmtree(root / target)
            (shutil.copytree if backup.is_dir() else shutil.copy2)(backup, root / target)

    return run


def _flip(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))


for _id, _what, _target, _how, _expect in [
    (
        "audit-png-byte",
        "one byte of the PNG changed",
        "figs/spectra.png",
        _flip,
        r"audit FAILED: changed: figs/spectra.png",
    ),
    (
        "audit-png-truncated",
        "the PNG truncated to half",
        "figs/spectra.png",
        lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
        r"audit FAILED: changed: figs/spectra.png",
    ),
    (
        "audit-sidecar-list",
        "the sidecar replaced by `[]`",
        "figs/spectra.prov.json",
        lambda p: p.write_text("[]"),
        r"audit FAILED: unreadable sidecar: figs/spectra.prov.json \(a JSON list, not an object\)",
    ),
    (
        "audit-sidecar-latin1",
        "the sidecar not UTF-8",
        "figs/spectra.prov.json",
        lambda p: p.write_bytes(b'{"x": "caf\xe9"}'),
        r"audit FAILED: unreadable sidecar: figs/spectra.prov.json \(not UTF-8 text",
    ),
    (
        "audit-sidecar-inputs",
        "the sidecar's `inputs` made a string",
        "figs/spectra.prov.json",
        lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "inputs": "x"})),
        r"audit FAILED: unreadable sidecar: figs/spectra.prov.json \('inputs' is a JSON str, not a list\)",
    ),
    (
        "audit-manifest-list",
        "a run's manifest replaced by `[]`",
        "run0/manifest.json",
        lambda p: p.write_text("[]"),
        r"audit FAILED: changed: .*run0/manifest.json",
    ),
    (
        "audit-manifest-truncated",
        "a manifest truncated",
        "data/data.npz.manifest.json",
        lambda p: p.write_text(p.read_text()[:50]),
        r"audit FAILED: changed: .*data/data.npz.manifest.json",
    ),
    (
        "audit-raw-changed",
        "the raw file changed",
        "data/raw_features.csv",
        lambda p: p.write_text(p.read_text() + "0,0\n"),
        r"audit FAILED: changed: data/raw_features.csv \(expected sha256 <sha>, found <sha>; recorded in .*data.npz.manifest.json\)",
    ),
    (
        "audit-raw-deleted",
        "the raw file deleted",
        "data/raw_features.csv",
        Path.unlink,
        r"audit FAILED: missing: data/raw_features.csv",
    ),
    (
        "audit-spectra-deleted",
        "a run's spectra deleted",
        "run1/spectra.parquet",
        Path.unlink,
        r"audit FAILED: missing: run1/spectra.parquet",
    ),
    (
        "audit-cohort-manifest",
        "the generated cohort's manifest deleted (a shortened lineage)",
        "cohorts/c/manifest.json",
        Path.unlink,
        r"audit FAILED: missing: \S*cohorts/c/manifest.json \(manifest of \S*cohorts/c/cohort.yaml, recorded in \S*data.npz.manifest.json\)",
    ),
    (
        "audit-cohort-raw",
        "one aseg.stats of the cohort changed",
        "cohorts/c/freesurfer",
        lambda p: _flip(sorted(p.glob("*/stats/aseg.stats"))[0]),
        r"audit FAILED: changed: \S*cohorts/c/freesurfer/\w+/stats/aseg.stats \(expected sha256 <sha>, found <sha>",
    ),
]:
    chain, fig = (
        (cohort_chain, "figs/curves.png") if _id.startswith("audit-cohort") else (figure_chain, "figs/spectra.png")
    )
    case(_id, "audit", _what, _expect, status=1)(_damage(_target, _how, fig, chain))


# ------------------------------------------------------------------------------ outcomes
_OUTCOMES: dict[str, tuple[int, str, str]] = {}


def outcome(c: Case, tmp_root: Path) -> tuple[int, str, str]:
    """(status, normalised message line, raw stderr) of a case, run once per session."""
    if c.id not in _OUTCOMES:
        tmp = tmp_root / c.id
        tmp.mkdir(parents=True, exist_ok=True)
        status, err = c.run(tmp)
        _OUTCOMES[c.id] = (status, normalise(message(status, err), tmp), normalise(err, tmp))
    return _OUTCOMES[c.id]
