"""Group subspaces: principal angles between the top-k singular subspaces of two gradients.

Do two groups push a weight in different directions? Their gradients G_a, G_b (weight layout,
n_out × n_in) have top-k left singular vectors (output space) and right singular vectors (input
space). The principal angles θ₁ ≤ … ≤ θ_k between the two k-dimensional subspaces are 0 when the
groups move the weight within the same subspace and π/2 for orthogonal directions.

Computed as in Björck & Golub (1973) and ``scipy.linalg.subspace_angles``: cosines from the
singular values of U_aᵀU_b for large angles, sines from the residual U_b − U_a(U_aᵀU_b) for small
ones (the cosine loses them). The top-k subspace of a gradient is defined only for k up to its
numerical rank, and is well conditioned only when σ_k > σ_{k+1} by a margin.
"""

from __future__ import annotations

import numpy as np

SIDES = ("left", "right")


def principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles (radians, ascending) between the row spaces of ``a`` (k, d) and ``b`` (k', d).

    Rows must be orthonormal (singular vectors are). Returns min(k, k') angles.
    """
    qa, qb = np.asarray(a, dtype=np.float64).T, np.asarray(b, dtype=np.float64).T
    if qa.shape[0] != qb.shape[0]:
        raise ValueError(f"vectors live in different spaces: dimension {qa.shape[0]} vs {qb.shape[0]}")
    if qa.shape[1] < qb.shape[1]:
        qa, qb = qb, qa
    cross = qa.T @ qb
    cos = np.linalg.svd(cross, compute_uv=False)  # descending: smallest angles first
    residual = qb - qa @ cross
    sin = np.linalg.svd(residual, compute_uv=False)[::-1]  # ascending: smallest angles first
    small = cos**2 >= 0.5
    theta = np.where(small, np.arcsin(np.clip(sin[: len(cos)], -1.0, 1.0)), np.arccos(np.clip(cos, -1.0, 1.0)))
    return np.sort(theta)


def normalise_signs(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flip each singular pair (u_i, v_i) together so v_i's largest-magnitude entry is positive.

    Singular vectors are defined up to a joint sign; a fixed convention makes stored vectors
    reproducible. Angles do not depend on it.
    """
    left, right = left.copy(), right.copy()
    for i in range(right.shape[0]):
        j = int(np.argmax(np.abs(right[i])))
        if right[i, j] < 0:
            right[i] *= -1
            if i < left.shape[0]:
                left[i] *= -1
    return left, right
