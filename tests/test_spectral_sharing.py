"""Spectra along the weight-sharing dimension (issue 13 item 5, paper §2.1): per time step of a
recurrent cell, per token of a token-wise Linear, per output position of a convolution — whole
batch and per group — against independent oracles, stored in the sibling file and plotted."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from spectral_oracle import assert_spectra_close, svd
from torch import nn

from autospec import SpectralRecorder, SpectraWriter
from autospec import nn as autospec_nn
from autospec.spectral.store_sharing import read_sharing, read_sharing_layout, sharing_path

GROUPS = torch.tensor([0, 1, 0, 1, 1, 0, 2])
N = 7


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = autospec_nn.LSTM(3, 4)  # layers.0.ih: one call over (N, T, 3); layers.0.hh: one call per step
        self.conv = nn.Conv2d(2, 3, (2, 3), stride=(1, 2))
        self.fc = nn.Linear(4 + 3, 2)

    def forward(self, seq, img):
        r = self.rnn(seq)[0][:, -1]
        c = torch.tanh(self.conv(img)).mean((2, 3))
        return self.fc(torch.cat([r, c], dim=1))


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    seq = torch.randn(N, 5, 3, generator=g, dtype=torch.float64)
    img = torch.randn(N, 2, 4, 7, generator=g, dtype=torch.float64)
    return seq, img, torch.randint(0, 2, (N,), generator=g)


def _oracle(model, seq, img, y):
    """Per-share gradients from retained outputs: Δ_sᵀ A_s summed over the group's samples."""
    calls = {}

    def keep(name):
        def hook(mod, args, out):
            out.retain_grad()
            calls.setdefault(name, []).append((args[0].detach(), out))

        return hook

    hs = [
        model.rnn.layers[0].hh.register_forward_hook(keep("hh")),
        model.rnn.layers[0].ih.register_forward_hook(keep("ih")),
        model.conv.register_forward_hook(keep("conv")),
    ]
    model.zero_grad()
    F.cross_entropy(model(seq, img), y).backward()
    for h in hs:
        h.remove()
    shares = {}
    # hh: one share per call (time step)
    shares["rnn.layers.0.hh.weight"] = [(a, o.grad) for a, o in calls["hh"]]
    # ih: one call over (N, T, F): one share per token
    a, o = calls["ih"][0]
    shares["rnn.layers.0.ih.weight"] = [(a[:, t], o.grad[:, t]) for t in range(a.shape[1])]
    # conv: one share per output position, A = the input patch of that position
    a, o = calls["conv"][0]
    kh, kw = model.conv.kernel_size
    sh, sw = model.conv.stride
    rows = []
    for i in range(o.shape[2]):
        for j in range(o.shape[3]):
            patch = a[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw].reshape(N, -1)
            rows.append((patch, o.grad[:, :, i, j]))
    shares["conv.weight"] = rows
    out = {}
    for key, items in shares.items():
        for s, (a_s, d_s) in enumerate(items):
            for gid in (None, 0, 1, 2):
                m = torch.ones(N, dtype=torch.bool) if gid is None else gid == GROUPS
                out[(key, gid, s)] = svd(d_s[m].T @ a_s[m])
    return out


@pytest.mark.parametrize("sync", [True, False])
def test_sharing_spectra_match_per_share_oracle(sync):
    torch.manual_seed(0)
    model = Net().double()
    seq, img, y = _data()
    rec = SpectralRecorder(model, stats=("grad",), sharing=True, sync=sync)
    with rec.record(groups=GROUPS) as snap:
        F.cross_entropy(model(seq, img), y).backward()
    oracle = _oracle(model, seq, img, y)
    expect = {"rnn.layers.0.hh.weight": (5, 1), "rnn.layers.0.ih.weight": (1, 5), "conv.weight": (1, 3 * 3)}
    for key, (calls, positions) in expect.items():
        for gid in (None, 0, 1, 2):
            sp = snap.sharing_spectra(key, gid)
            assert sp.values.shape[0] == calls * positions
            np.testing.assert_array_equal(sp.call, np.repeat(np.arange(calls), positions))
            np.testing.assert_array_equal(sp.position, np.tile(np.arange(positions), calls))
            for s in range(calls * positions):
                want = oracle[(key, gid, s)]
                got = sp.values[s]
                n = min(len(got), len(want))
                assert_spectra_close(got[:n], want[:n], f"{key} group {gid} share {s}")
                assert np.all(want[n:] <= 1e-12 * max(want[0], 1e-300))  # beyond the share's rows: zero
    with pytest.raises(KeyError, match="sharing"):
        snap.sharing_spectra("fc.weight")  # one use per sample: no sharing dimension


def test_sharing_spectra_sum_to_the_gradient():
    """Σ_s G_s = G: the shares' gradients add up (checked through the oracle's shares)."""
    torch.manual_seed(1)
    model = Net().double()
    seq, img, y = _data(1)
    model.zero_grad()
    F.cross_entropy(model(seq, img), y).backward()
    grad = model.rnn.layers[0].hh.weight.grad.clone()
    rec = SpectralRecorder(model, stats=("grad",), sharing=True, include=["rnn.layers.0.hh.weight"])
    model.zero_grad()
    with rec.record() as snap:
        F.cross_entropy(model(seq, img), y).backward()
    assert_spectra_close(snap.singular_values("rnn.layers.0.hh.weight"), svd(grad), "whole")
    assert snap.sharing_spectra("rnn.layers.0.hh.weight").values.shape[0] == 5


def test_sharing_file_round_trip_and_layout(tmp_path):
    torch.manual_seed(2)
    model = Net().double()
    seq, img, y = _data(2)
    rec = SpectralRecorder(model, stats=("grad",), sharing=True)
    path = tmp_path / "spectra.parquet"
    with SpectraWriter(path, {"run": "t"}) as w:
        for _ in range(2):
            model.zero_grad()
            with rec.record(groups=GROUPS) as snap:
                F.cross_entropy(model(seq, img), y).backward()
            w.write(snap)
    df = read_sharing(path)
    assert list(df.columns) == ["step", "key", "group", "call", "position", "index", "value", "rank_zero"]
    assert sorted(df["step"].unique()) == [0, 1] and set(df["group"]) == {-1, 0, 1, 2}
    sel = df[(df.step == 1) & (df.key == "conv.weight") & (df.group == 1) & (df.position == 4)].sort_values("index")
    np.testing.assert_array_equal(sel["value"].to_numpy(), snap.sharing_spectra("conv.weight", 1).values[4])
    np.testing.assert_array_equal(sel["rank_zero"].to_numpy(), sel["value"].to_numpy() == 0.0)
    layout = read_sharing_layout(path)
    assert layout["conv.weight"]["position_shape"] == [3, 3]
    assert layout["rnn.layers.0.hh.weight"]["calls"] == 5 and layout["rnn.layers.0.ih.weight"]["positions"] == 5
    assert sharing_path(path).name == "spectra.sharing.parquet"


def test_sharing_figure_renders_one_panel_per_weight(tmp_path):
    from autospec.figures.sharing import sharing_figure

    torch.manual_seed(3)
    model = Net().double()
    seq, img, y = _data(3)
    rec = SpectralRecorder(model, stats=("grad",), sharing=True, schedule=[0, 1, 3, 7])
    path = tmp_path / "spectra.parquet"
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with SpectraWriter(path) as w:
        for _ in range(8):  # recorded at uneven steps 0, 1, 3, 7
            opt.zero_grad()
            with rec.record(groups=GROUPS) as snap:
                F.cross_entropy(model(seq, img), y).backward()
            w.write(snap)
            opt.step()
    fig = sharing_figure(path, out_png=tmp_path / "sharing.png")
    assert (tmp_path / "sharing.png").stat().st_size > 0
    assert (tmp_path / "sharing.prov.json").exists()
    titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_title(loc="left")]
    assert len(titles) == 3 and any("time step" in t for t in titles) and any("output position" in t for t in titles)
    assert any("token" in t for t in titles)
    rows = [ax for ax in fig.axes if ax.get_ylabel() == "recorded step"]
    for ax in rows:  # uneven steps: the y axis spans the recorded steps, not their count
        lo, hi = sorted(ax.get_ylim())
        assert lo <= 0 and hi >= 7
