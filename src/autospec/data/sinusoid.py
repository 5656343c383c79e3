"""Sinusoid sequences (the seed paper's Elman-RNN data) with classes and a planted group effect.

Sample ``i`` of class ``k``: ``x_i(t) = a_i sin(2 pi c_k t / T + phi_i) + s_g e_i(t)``,
``t = 0..T-1``, ``e ~ N(0, 1)``, amplitude ``a_i ~ U(0.8, 1.2)``.

* ``kind="frequency"`` (default): classes differ in frequency, ``c_k = 2 (k + 1)`` cycles per
  sequence (2, 4, 6, ...); the phase ``phi_i ~ U(0, 2 pi)`` is random, so only the frequency
  tells the classes apart.
* ``kind="phase"``: every class has ``c = 3`` cycles; the phase tells them apart,
  ``phi_i = 2 pi k / K + N(0, (0.1 pi / K)^2)``.

Groups: within each class a seeded random half is group ``low-noise`` (``s_g = noise``) and
the rest ``high-noise`` (``s_g = 2 * noise``): the planted group difference is the noise
amplitude; classes are balanced across groups.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .dataset import Dataset

KINDS = ("frequency", "phase")
GROUP_NAMES = ["low-noise", "high-noise"]
HIGH_NOISE_FACTOR = 2.0
PHASE_KIND_CYCLES = 3


def class_cycles(n_classes: int) -> list[int]:
    """Cycles per sequence of each class for ``kind="frequency"``."""
    return [2 * (k + 1) for k in range(n_classes)]


def make_sinusoids(
    n_per_class: int,
    *,
    n_classes: int = 2,
    length: int = 64,
    seed: int = 0,
    kind: str = "frequency",
    noise: float = 0.1,
) -> Dataset:
    """Sinusoid sequences as a :class:`Dataset`: X float32 (N, T, 1), N = n_per_class * n_classes.

    See the module docstring for the generating formula, the classes and the groups.
    """
    cycles = _checked_cycles(n_per_class, n_classes, length, kind, noise)
    rng = np.random.default_rng(seed)
    n = n_per_class * n_classes
    y = np.repeat(np.arange(n_classes), n_per_class)
    amp = rng.uniform(0.8, 1.2, size=n)
    if kind == "frequency":
        phase = rng.uniform(0.0, 2 * np.pi, size=n)
        class_names = [f"freq-{c}" for c in cycles]
    else:
        jitter = rng.normal(0.0, 0.1 * np.pi / n_classes, size=n)
        phase = 2 * np.pi * y / n_classes + jitter
        class_names = [f"phase-{round(360 * k / n_classes)}" for k in range(n_classes)]
    groups = np.zeros(n, dtype=np.int64)
    for k in range(n_classes):
        rows = np.flatnonzero(y == k)
        groups[rng.permutation(rows)[n_per_class // 2 :]] = 1
    t = np.arange(length)
    freq = np.asarray(cycles, dtype=float)[y] / length
    clean = amp[:, None] * np.sin(2 * np.pi * freq[:, None] * t[None, :] + phase[:, None])
    scale = noise * np.where(groups == 1, HIGH_NOISE_FACTOR, 1.0)
    x = clean + scale[:, None] * rng.standard_normal((n, length))
    return Dataset(
        X=x[:, :, None].astype(np.float32),
        y=y,
        groups=groups,
        subject_ids=np.array([f"sin-{i + 1:05d}" for i in range(n)]),
        class_names=np.asarray(class_names, dtype=str),
        group_names=np.asarray(GROUP_NAMES, dtype=str),
        meta={
            "kind": "sinusoid",
            "axes": ["sample", "time", "channel"],
            "sinusoid_kind": kind,
            "cycles_per_sequence": cycles,
            "length": length,
            "noise": noise,
            "high_noise_factor": HIGH_NOISE_FACTOR,
            "seed": seed,
            "n_per_class": n_per_class,
        },
    )


def _checked_cycles(n_per_class: int, n_classes: int, length: int, kind: str, noise: float) -> list[int]:
    """Each class's cycles per sequence, after refusing arguments that cannot make the data."""
    if kind not in KINDS:
        raise InputError(f"kind: unknown {kind!r} (choose from {', '.join(KINDS)})")
    if n_per_class < 2:
        raise InputError(f"n_per_class: {n_per_class} must be >= 2 (one per group at least)")
    if n_classes < 2:
        raise InputError(f"n_classes: {n_classes} must be >= 2")
    if noise < 0 or not np.isfinite(noise):
        raise InputError(f"noise: {noise} must be a finite number >= 0")
    cycles = class_cycles(n_classes) if kind == "frequency" else [PHASE_KIND_CYCLES] * n_classes
    # stay well below Nyquist (T/2 cycles) so every class is a clean, distinct sinusoid
    if length < 4 * max(cycles):
        raise InputError(
            f"length: {length} time steps is too short for {max(cycles)} cycles (need >= {4 * max(cycles)})"
        )
    return cycles
