"""Group subspaces: top-k singular vectors per group and principal angles between groups,
against scipy.linalg.subspace_angles on the oracle's masked-loss gradients."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn

from autospec import SpectralRecorder, SpectraWriter
from autospec.spectral import read_principal_angles, read_subspaces, subspaces_path

N = 12
GROUPS = torch.tensor([0, 1, 2] * 4)


def _oracle_svd(model, losses, gid):
    """(U, s, Vh) of each ≥2-D weight's gradient of Σ_{i∈g} ℓ_i / N (None = whole batch), float64."""
    model.zero_grad(set_to_none=True)
    ell = losses()
    mask = torch.ones(N, dtype=ell.dtype) if gid is None else (gid == GROUPS).to(ell.dtype)
    ((ell * mask).sum() / N).backward()
    out = {k: np.linalg.svd(p.grad.detach().double().reshape(p.shape[0], -1).numpy(), full_matrices=False)
           for k, p in model.named_parameters() if p.dim() >= 2}  # fmt: skip
    model.zero_grad(set_to_none=True)
    return out


class _LSTMHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 6, batch_first=True)
        self.fc = nn.Linear(6, 6)

    def forward(self, x):
        return self.fc(self.lstm(x)[0][:, -1])


CASES = {
    # few rows per group: the QR-core route gives the vectors
    "mlp_qr": (lambda: nn.Sequential(nn.Linear(30, 20), nn.Tanh(), nn.Linear(20, 6)), lambda: torch.randn(N, 30)),
    # many rows per group (conv positions): the formed route
    "conv_formed": (
        lambda: nn.Sequential(nn.Conv1d(2, 5, 3), nn.Tanh(), nn.Flatten(), nn.Linear(5 * 14, 6)),
        lambda: torch.randn(N, 2, 16),
    ),
    # the generic route (replayed LSTM)
    "lstm_generic": (_LSTMHead, lambda: torch.randn(N, 5, 3)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_principal_angles_match_scipy_on_oracle_gradients(case):
    torch.manual_seed(0)
    make, data = CASES[case]
    model = make().double()
    x, y = data().double(), torch.randint(0, 6, (N,))

    def losses():
        return F.cross_entropy(model(x), y, reduction="none")

    k = 2
    rec = SpectralRecorder(model, stats=("grad",), subspaces=k)
    with rec.record(groups=GROUPS) as snap:
        losses().mean().backward()
    oracle = {g: _oracle_svd(model, losses, g) for g in (None, 0, 1, 2)}
    for key in snap.keys:
        for g in (None, 0, 1, 2):
            u, _, vh = oracle[g][key]
            for side, want in (("left", u[:, :k].T), ("right", vh[:k])):
                got = snap.singular_vectors(key, g, side)
                assert got.shape == want.shape
                # each vector equals the oracle's up to sign
                np.testing.assert_allclose(np.abs(np.sum(got * want, axis=1)), 1.0, atol=1e-6, err_msg=f"{key} {g}")
        for g1, g2 in ((0, 1), (0, 2), (1, 2), (None, 1)):
            for side, pick in (("left", lambda usv: usv[0][:, :k]), ("right", lambda usv: usv[2][:k].T)):
                want = np.sort(scipy.linalg.subspace_angles(pick(oracle[g1][key]), pick(oracle[g2][key])))
                got = snap.principal_angles(key, g1, g2, k, side=side)
                np.testing.assert_allclose(got, want, atol=1e-7, err_msg=f"{case} {key} {g1}-{g2} {side}")
        assert np.all(snap.principal_angles(key, 1, 1, k) < 1e-7)  # a subspace with itself


def test_vectors_beyond_the_numerical_rank_are_not_defined():
    """Output layer of a 3-class softmax: rank ≤ 2, so a top-3 subspace does not exist."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(10, 8), nn.Tanh(), nn.Linear(8, 3))
    x, y = torch.randn(N, 10), torch.randint(0, 3, (N,))
    rec = SpectralRecorder(model, subspaces=3)
    with rec.record(groups=GROUPS) as snap:
        F.cross_entropy(model(x), y).backward()
    assert snap.rank("2.weight", group=0) == 2
    assert snap.singular_vectors("2.weight", 0).shape == (2, 8)
    with pytest.raises(ValueError, match="only 2 singular vectors are defined"):
        snap.principal_angles("2.weight", 0, 1, 3)
    assert snap.principal_angles("2.weight", 0, 1).shape == (2,)
    with pytest.raises(KeyError, match="subspaces=k"):
        _recorded_without_subspaces().singular_vectors("0.weight")


def _recorded_without_subspaces():
    model = nn.Sequential(nn.Linear(4, 3))
    with SpectralRecorder(model).record() as snap:
        model(torch.randn(5, 4)).sum().backward()
    return snap


def test_vectors_and_angles_round_trip_through_the_subspaces_file(tmp_path):
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(10, 8), nn.Tanh(), nn.Linear(8, 4))
    x, y = torch.randn(N, 10), torch.randint(0, 4, (N,))
    rec = SpectralRecorder(model, subspaces=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "spectra.parquet"
    snaps = []
    with SpectraWriter(path, {"run": "t"}) as w:
        for _ in range(3):
            opt.zero_grad()
            with rec.record(groups=GROUPS) as snap:
                F.cross_entropy(model(x), y).backward()
            w.write(snap)
            snaps.append(snap)
            opt.step()
    assert subspaces_path(path) == tmp_path / "spectra.subspaces.parquet" and subspaces_path(path).exists()
    df = read_subspaces(path)
    assert list(df.columns) == ["step", "key", "group", "side", "index", "sigma", "vector"]
    row = df[(df.step == 1) & (df.key == "0.weight") & (df.group == 2) & (df.side == "right") & (df["index"] == 1)]
    np.testing.assert_array_equal(np.asarray(row["vector"].iloc[0]), snaps[1].singular_vectors("0.weight", 2)[1])
    angles = read_principal_angles(path, "0.weight", 0, 1, k=2)
    for step, snap in enumerate(snaps):
        got = angles[angles.step == step].sort_values("index")["angle"].to_numpy()
        np.testing.assert_array_equal(got, snap.principal_angles("0.weight", 0, 1, 2))


def test_principal_angles_figure_is_written_with_provenance(tmp_path):
    from autospec.figures.angles import principal_angles_figure

    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(10, 8), nn.Tanh(), nn.Linear(8, 4))
    x, y = torch.randn(N, 10), torch.randint(0, 4, (N,))
    rec = SpectralRecorder(model, subspaces=2)
    with SpectraWriter(tmp_path / "spectra.parquet") as w:
        for _ in range(2):
            model.zero_grad()
            with rec.record(groups=GROUPS) as snap:
                F.cross_entropy(model(x), y).backward()
            w.write(snap)
    fig = principal_angles_figure(
        tmp_path / "spectra.parquet", 0, 1, out_png=tmp_path / "angles.png", names={0: "SZ", 1: "HC"}
    )
    assert (tmp_path / "angles.png").stat().st_size > 1000
    assert (tmp_path / "angles.prov.json").exists()
    assert len(fig.axes) == 2 and "SZ vs HC" in fig.axes[0].get_title(loc="left")
