"""API papercuts of issue 12 item 7, autospec.check and the extension registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from spectral_oracle import assert_spectra_close, svd
from torch import nn

import autospec
from autospec import SpectralRecorder
from autospec.spectral.adapters.base import LayerAdapter
from autospec.spectral.registry import ADAPTERS, register_adapter


def _mlp():
    return nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))


def _step(model, rec, groups=None, n=5):
    x, y = torch.randn(n, 8), torch.randint(0, 3, (n,))
    with rec.record(groups=groups) as snap:
        F.cross_entropy(model(x), y).backward()
    return snap


def test_nested_record_of_one_recorder_is_a_clear_error():
    model = _mlp()
    rec = SpectralRecorder(model)
    with pytest.raises(RuntimeError, match="cannot nest"), rec.record(), rec.record():
        pass
    _step(model, rec)  # the recorder is usable afterwards


@pytest.mark.parametrize(
    "include, keys",
    [
        ("2.*", ["2.weight"]),  # a string is one pattern, not a list of characters
        (["0"], ["0.weight"]),  # a module name
        ("0.weight", ["0.weight"]),
        ([nn.Linear], ["0.weight", "2.weight"]),
        (nn.Linear, ["0.weight", "2.weight"]),
        (["*weight"], ["0.weight", "2.weight"]),
    ],
)
def test_include_takes_names_patterns_module_names_and_types(include, keys):
    assert SpectralRecorder(_mlp(), include=include).keys == keys


@pytest.mark.parametrize("include", ["3.*", ["0", "nope"], [nn.Conv2d], []])
def test_an_include_item_matching_nothing_is_an_error(include):
    with pytest.raises(ValueError, match=r"matches no weight matrix|include is empty"):
        SpectralRecorder(_mlp(), include=include)


def test_returned_arrays_are_read_only():
    model = _mlp()
    snap = _step(model, SpectralRecorder(model, subspaces=2), groups=[0, 1, 0, 1, 0])
    v = snap.singular_values("0.weight")
    with pytest.raises(ValueError, match="read-only"):
        v[:] = 0
    with pytest.raises(ValueError, match="read-only"):
        snap.singular_vectors("0.weight", 0)[0, 0] = 1.0
    assert v[0] > 0 and snap.singular_values("0.weight")[0] == v[0]
    with pytest.raises(RuntimeError, match="read-only"):
        snap.add_spectrum("0.weight", "grad", -1, np.zeros(3), 0)


@pytest.mark.parametrize("group", ["1", 1.7, True, np.float64(1.0)])
def test_a_group_argument_must_be_an_integer(group):
    model = _mlp()
    snap = _step(model, SpectralRecorder(model), groups=[0, 1, 0, 1, 0])
    with pytest.raises(TypeError, match="integer group id"):
        snap.singular_values("0.weight", group=group)
    assert snap.singular_values("0.weight", group=np.int64(1)).shape == (6,)


@pytest.mark.parametrize(
    "options, err",
    [
        ({"top_k": 2.5}, TypeError),
        ({"top_k": 0}, ValueError),
        ({"every": 1.5}, TypeError),
        ({"every": True}, TypeError),
        ({"stats": ("grad", "hessian")}, ValueError),
        ({"assume_independent": "yes"}, TypeError),
        ({"batch_dim": 1.0}, TypeError),
        ({"subspaces": 2, "stats": ("act",)}, ValueError),
        ({"include": [3]}, TypeError),
    ],
)
def test_options_are_validated_at_construction(options, err):
    with pytest.raises(err):
        SpectralRecorder(_mlp(), **options)


def test_a_single_stat_may_be_given_as_a_string():
    assert SpectralRecorder(_mlp(), stats="grad").stats == ("grad",)


def test_a_block_without_forward_or_backward_warns_that_nothing_was_recorded():
    model = _mlp()
    rec = SpectralRecorder(model)
    x = torch.randn(4, 8)
    out = model(x)  # forward outside the block
    with pytest.warns(RuntimeWarning, match="nothing was recorded at step 0"), rec.record() as snap:
        out.sum().backward()
    assert snap.recorded and snap.keys == []


def test_a_backward_after_the_block_warns_that_nothing_was_recorded():
    model = _mlp()
    rec = SpectralRecorder(model)
    with (
        pytest.warns(RuntimeWarning, match=r"forward ran inside the record\(\) block but not its backward"),
        rec.record() as snap,
    ):
        out = model(torch.randn(4, 8))
    out.sum().backward()  # after the block: nothing is recorded, .grad is as usual
    assert snap.keys == [] and model[0].weight.grad is not None


def test_skipped_steps_do_not_warn():
    model = _mlp()
    rec = SpectralRecorder(model, every=2)
    _step(model, rec)
    with rec.record() as snap:
        pass
    assert not snap.recorded


# ---------------------------------------------------------------------------------- autospec.check
class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.lstm = nn.LSTM(4, 5, batch_first=True)
        self.fc = nn.Linear(5, 10, bias=False)
        self.tied = nn.Linear(4, 10, bias=False)
        self.tied.weight = self.emb.weight
        self.frozen = nn.Linear(5, 5)
        self.frozen.weight.requires_grad_(False)

    def forward(self, x):
        h = self.lstm(self.emb(x))[0]
        return self.fc(self.frozen(h)).mean(1)


def test_check_lists_every_weights_route_and_why():
    report = autospec.check(Mixed())
    routes = {r.key: r for r in report.routes}
    assert routes["emb.weight"].route == "adapter+generic"
    assert "contributions summed" in routes["emb.weight"].detail
    assert (
        routes["lstm.weight_ih_l0"].route == "generic"
        and "fused recurrent kernel" in routes["lstm.weight_ih_l0"].detail
    )
    assert routes["fc.weight"].route == "adapter" and "LinearAdapter" in routes["fc.weight"].detail
    assert routes["frozen.weight"].route == "not recorded" and "requires_grad" in routes["frozen.weight"].detail
    assert routes["lstm.bias_ih_l0"].route == "not recorded"
    assert report.ok and "emb.weight" in str(report)
    sparse = autospec.check(nn.Sequential(nn.Embedding(10, 4, sparse=True), nn.Linear(4, 2)))
    assert not sparse.ok and sparse.to_frame().set_index("key").loc["0.weight", "route"] == "refused"


def test_check_with_example_inputs_runs_a_trial_and_leaves_the_model_untouched():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.Linear(6, 3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(8, 5)
    rng = torch.random.get_rng_state()
    report = autospec.check(model, x)
    assert report.trial and not report.ok
    assert "couples samples" in report.problems[0] and "BatchNorm1d" in report.problems[0]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(rng, torch.random.get_rng_state())
    assert autospec.check(model.eval(), x).ok


# ---------------------------------------------------------------------------------- the registry
class Scaled(nn.Module):
    """y = x Wᵀ · 2: not an nn.Linear, so generic unless an adapter is registered."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in) / n_in**0.5)

    def forward(self, x):
        return 2.0 * F.linear(x, self.weight)


def test_a_registered_adapter_takes_over_and_stays_exact():
    torch.manual_seed(1)
    model = nn.Sequential(Scaled(6, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    x = torch.randn(7, 6, dtype=torch.float64)
    assert autospec.check(model).routes[0].route == "generic"
    try:

        @register_adapter(Scaled)
        class ScaledAdapter(LayerAdapter):
            def input_rows(self, module, x):
                return 2.0 * x.reshape(x.shape[0], -1, x.shape[-1])

            def output_rows(self, module, grad):
                return grad.reshape(grad.shape[0], -1, grad.shape[-1])

        assert autospec.check(model).routes[0].route == "adapter"
        rec = SpectralRecorder(model)
        with rec.record(groups=[0, 1, 0, 1, 1, 0, 1]) as snap:
            model(x).pow(2).sum().backward()
        assert_spectra_close(snap.singular_values("0.weight"), svd(model[0].weight.grad), "registered adapter")
        assert snap.singular_values("0.weight", "act").shape == (6,)
    finally:
        ADAPTERS._by_type.pop(Scaled, None)
