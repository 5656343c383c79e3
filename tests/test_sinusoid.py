"""Sinusoid sequences: shapes, classes (frequency / phase), planted group noise, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autospec import cli
from autospec.data.dataset import load_dataset
from autospec.data.sinusoid import class_cycles, make_sinusoids
from autospec.errors import InputError


def dominant_cycles(x: np.ndarray) -> np.ndarray:
    """Cycles per sequence of the largest Fourier component of each sequence (N, T, 1)."""
    return np.abs(np.fft.rfft(x[:, :, 0], axis=1))[:, 1:].argmax(axis=1) + 1


def test_shapes_and_labels():
    ds = make_sinusoids(10, n_classes=3, length=48, seed=1)
    assert ds.X.shape == (30, 48, 1) and ds.X.dtype == np.float32
    assert np.array_equal(np.bincount(ds.y), [10, 10, 10])
    assert list(ds.class_names) == ["freq-2", "freq-4", "freq-6"]
    assert list(ds.group_names) == ["low-noise", "high-noise"]
    for k in range(3):
        assert (ds.groups[ds.y == k] == 1).sum() == 5
    assert len(set(ds.subject_ids)) == 30


def test_frequency_classes():
    ds = make_sinusoids(40, n_classes=4, length=64, seed=0, noise=0.2)
    cycles = np.array(class_cycles(4))
    assert np.array_equal(dominant_cycles(ds.X), cycles[ds.y])


def test_phase_classes():
    ds = make_sinusoids(30, n_classes=2, length=60, seed=0, kind="phase", noise=0.1)
    assert (dominant_cycles(ds.X) == 3).all()  # same frequency in both classes
    t = np.arange(60)
    ref = np.exp(-2j * np.pi * 3 * t / 60)
    phase = np.angle(ds.X[:, :, 0] @ ref) + np.pi / 2  # phase of the sine
    diff = np.angle(np.exp(1j * (phase[ds.y == 1].mean() - phase[ds.y == 0].mean())))
    assert abs(abs(diff) - np.pi) < 0.2  # classes half a cycle apart
    assert list(ds.class_names) == ["phase-0", "phase-180"]


def test_group_noise_difference():
    ds = make_sinusoids(200, length=64, seed=2, noise=0.2)
    # remove the sinusoid (its 2 Fourier bins) and measure what is left
    spec = np.fft.rfft(ds.X[:, :, 0], axis=1)
    for k, c in enumerate(class_cycles(2)):
        spec[ds.y == k, c] = 0
    resid = np.fft.irfft(spec, n=64, axis=1).std(axis=1)
    ratio = resid[ds.groups == 1].mean() / resid[ds.groups == 0].mean()
    assert 1.8 < ratio < 2.2


def test_deterministic():
    a, b, c = (make_sinusoids(5, seed=s) for s in (7, 7, 8))
    assert np.array_equal(a.X, b.X) and np.array_equal(a.groups, b.groups)
    assert not np.array_equal(a.X, c.X)


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"length": 20, "n_classes": 3}, "too short"),
        ({"kind": "amplitude"}, "unknown"),
        ({"n_classes": 1}, "n_classes"),
        ({"noise": -1.0}, "noise"),
    ],
)
def test_bad_arguments(kw, msg):
    with pytest.raises(InputError, match=msg):
        make_sinusoids(4, **kw)


def test_cli(tmp_path):
    out = tmp_path / "sin.npz"
    assert (
        cli.main(
            [
                "make-sinusoid",
                "--out",
                str(out),
                "--n-per-class",
                "6",
                "--kind",
                "phase",
                "--length",
                "32",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    ds = load_dataset(out)
    assert ds.X.shape == (12, 32, 1) and ds.meta["sinusoid_kind"] == "phase"
    man = json.loads((tmp_path / "sin.npz.manifest.json").read_text())
    assert man["params"]["kind"] == "phase" and man["outputs"][0]["path"] == str(out)
    assert cli.main(["make-sinusoid", "--out", str(tmp_path / "x.npz"), "--length", "4"]) == 2
    assert not (tmp_path / "x.npz").exists()
