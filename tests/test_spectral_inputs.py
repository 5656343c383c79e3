"""Bad input, options, .grad neutrality, in-place ops and bounded memory."""

from __future__ import annotations

import copy
import gc
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from spectral_oracle import assert_spectra_close, svd
from torch import nn

from autospec import SpectralRecorder


def _mlp(inplace=False):
    return nn.Sequential(nn.Linear(8, 6), nn.ReLU(inplace=inplace), nn.Linear(6, 3))


def _step(model, rec, x, y, groups=None):
    with rec.record(groups=groups) as snap:
        F.cross_entropy(model(x), y).backward()
    return snap


def test_grad_is_bit_identical_with_and_without_recording():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(3 * 8, 2))
    b = copy.deepcopy(a)
    lstm_a = nn.LSTM(2, 3, batch_first=True)
    lstm_b = copy.deepcopy(lstm_a)
    x, y = torch.randn(7, 2, 10), torch.randint(0, 2, (7,))
    seq = torch.randn(7, 5, 2)
    rec = SpectralRecorder(nn.ModuleList([a, lstm_a]))
    with rec.record(groups=torch.tensor([0, 1, 0, 1, 0, 1, 1])):
        (F.cross_entropy(a(x), y) + lstm_a(seq)[0].sum()).backward()
    (F.cross_entropy(b(x), y) + lstm_b(seq)[0].sum()).backward()
    for (n, p), (_, q) in zip(
        list(a.named_parameters()) + list(lstm_a.named_parameters()),
        list(b.named_parameters()) + list(lstm_b.named_parameters()),
    ):
        assert torch.equal(p.grad, q.grad), n


def test_inplace_relu_after_linear_gives_pre_activation_adjoint():
    torch.manual_seed(1)
    model = _mlp(inplace=True).double()
    x, y = torch.randn(5, 8, dtype=torch.float64), torch.randint(0, 3, (5,))
    snap = _step(model, SpectralRecorder(model), x, y)
    z = (x @ model[0].weight.T + model[0].bias).detach().requires_grad_()
    F.cross_entropy(model[2](torch.relu(z)), y).backward()
    assert_spectra_close(snap.singular_values("0.weight", "delta"), svd(z.grad), "delta under inplace ReLU")


def test_groups_of_wrong_length_name_both_sizes():
    model = _mlp()
    rec = SpectralRecorder(model)
    with pytest.raises(ValueError, match=r"groups has 4 entries.*batch of 5 samples"):
        _step(model, rec, torch.randn(5, 8), torch.randint(0, 3, (5,)), torch.tensor([0, 1, 0, 1]))
    assert all(not m._forward_hooks for m in model.modules())  # hooks removed after the error


def test_groups_of_wrong_length_on_the_generic_path():
    lstm = nn.LSTM(2, 3, batch_first=True)
    rec = SpectralRecorder(lstm)
    with (
        pytest.raises(ValueError, match=r"groups has 3 entries.*batch of 4 samples"),
        rec.record(groups=torch.tensor([0, 1, 0])),
    ):
        lstm(torch.randn(4, 5, 2))[0].sum().backward()


@pytest.mark.parametrize(
    "groups, err, msg",
    [
        (torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0]), TypeError, "integer group ids, got dtype torch.float32"),
        (torch.tensor([True, False, True, False, True]), TypeError, "integer group ids"),
        (np.array([0.5, 1, 0, 1, 0]), TypeError, "numpy array of dtype float64"),
        (["0", "1", "0", "1", "0"], TypeError, r"got '0' \(str\)"),
        ([0, 1.7, 0, 1, 0], TypeError, r"got 1.7 \(float\)"),
        ([0, True, 0, 1, 0], TypeError, r"got True \(bool\)"),
        ("01010", TypeError, "tensor, array or list"),
        (torch.tensor([[0, 1, 0, 1, 0]]), ValueError, "1-D"),
        (torch.tensor([0, -1, 0, 1, 0]), ValueError, ">= 0"),
    ],
)
def test_bad_group_tensors_are_refused(groups, err, msg):
    model = _mlp()
    with pytest.raises(err, match=msg):
        _step(model, SpectralRecorder(model), torch.randn(5, 8), torch.randint(0, 3, (5,)), groups)


def test_numpy_and_list_groups_are_accepted():
    model = _mlp()
    rec = SpectralRecorder(model)
    x, y = torch.randn(4, 8), torch.randint(0, 3, (4,))
    s1 = _step(model, rec, x, y, np.array([0, 1, 1, 0]))
    model.zero_grad()
    s2 = _step(model, rec, x, y, [0, 1, 1, 0])
    np.testing.assert_allclose(s1.singular_values("0.weight", group=1), s2.singular_values("0.weight", group=1))


def test_nan_gradients_are_recorded_as_nan_with_a_warning_and_training_goes_on():
    model = _mlp()
    rec = SpectralRecorder(model)
    x, y = torch.randn(4, 8), torch.randint(0, 3, (4,))
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.warns(RuntimeWarning, match="non-finite gradient at step 0"):
        snap = _step(model, rec, bad, y, torch.tensor([0, 0, 1, 1]))
        assert np.isnan(snap.singular_values("0.weight")).all()  # async: the warning comes with the values
    model.zero_grad()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = _step(model, rec, x, y, torch.tensor([0, 0, 1, 1]))
    assert np.isfinite(ok.singular_values("0.weight")).all()


def test_batchnorm_in_training_mode_refuses_groups_but_eval_mode_is_fine():
    model = nn.Sequential(nn.Linear(8, 6), nn.BatchNorm1d(6), nn.Linear(6, 3))
    rec = SpectralRecorder(model)
    x, y, g = torch.randn(6, 8), torch.randint(0, 3, (6,)), torch.tensor([0, 1] * 3)
    with pytest.raises(
        ValueError, match=r"couples samples.*between the output of '0' \(Linear\) and the output of '1' \(BatchNorm1d\)"
    ):
        _step(model, rec, x, y, g)
    _step(model, rec, x, y)  # no groups: fine
    model[1].eval()
    assert _step(model, rec, x, y, g).groups == [0, 1]


def test_options_every_top_k_include_and_stats():
    model = _mlp()
    x, y = torch.randn(5, 8), torch.randint(0, 3, (5,))
    rec = SpectralRecorder(model, every=2, top_k=2, include=["2.*"], stats=("grad", "delta"))
    snaps = [_step(model, rec, x, y) for _ in range(3)]
    assert [s.recorded for s in snaps] == [True, False, True]
    assert snaps[1].keys == [] and snaps[0].keys == ["2.weight"]
    assert snaps[0].singular_values("2.weight").shape == (2,)
    with pytest.raises(KeyError, match="stats option"):
        snaps[0].singular_values("2.weight", "act")
    assert SpectralRecorder(model, include=[nn.Linear]).keys == ["0.weight", "2.weight"]
    for bad in ({"stats": ("grad", "hessian")}, {"every": 0}, {"top_k": 0}):
        with pytest.raises(ValueError):
            SpectralRecorder(model, **bad)


def test_memory_does_not_grow_with_steps():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 3))
    lstm = nn.LSTM(3, 4, batch_first=True)
    both = nn.ModuleList([model, lstm])
    rec = SpectralRecorder(both)
    opt = torch.optim.SGD(both.parameters(), lr=0.01)
    x, y, seq = torch.randn(32, 16), torch.randint(0, 3, (32,)), torch.randn(32, 5, 3)
    g = torch.arange(32) % 2

    def live_tensors():
        gc.collect()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # isinstance on deprecated torch proxies warns
            return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))

    counts = []
    for step in range(30):
        opt.zero_grad()
        with rec.record(groups=g):
            (F.cross_entropy(model(x), y) + lstm(seq)[0].pow(2).mean()).backward()
        opt.step()
        if step in (5, 29):
            rec.wait()  # spectra still being computed hold their step's work (bounded by the queue)
            counts.append(live_tensors())
    assert counts[1] <= counts[0]
    assert rec._state is None and all(not m._forward_hooks and not m._forward_pre_hooks for m in both.modules())


def test_two_nested_recorders_do_not_see_each_others_replays():
    from autospec.nn import LearnedPositions

    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(3, 4), LearnedPositions(5, 4), nn.Flatten(), nn.Linear(20, 2)).double()
    x, y = torch.randn(6, 5, 3, dtype=torch.float64), torch.randint(0, 2, (6,))
    g = torch.tensor([0, 1, 0, 1, 1, 0])
    alone = SpectralRecorder(model, stats=("grad",))
    with alone.record(groups=g) as ref:
        F.cross_entropy(model(x), y).backward()
    model.zero_grad()
    outer, inner = SpectralRecorder(model, stats=("grad",)), SpectralRecorder(model, stats=("grad",))
    with outer.record(groups=g) as snap, inner.record(groups=torch.arange(6)) as per_sample:
        F.cross_entropy(model(x), y).backward()
    for key in ref.keys:
        for gid in (None, 0, 1):
            np.testing.assert_allclose(
                snap.singular_values(key, "grad", gid), ref.singular_values(key, "grad", gid), rtol=1e-12
            )
    assert per_sample.groups == list(range(6))
