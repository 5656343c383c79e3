"""The model battery: shapes, gradients, hookability, determinism and argument checking."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from autospec.errors import InputError
from autospec.models import TASKS, available_families, build_model, register
from autospec.nn import LearnedPositions

DT = torch.float64
CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
CONV_WEIGHT_GRAD = {1: torch.nn.grad.conv1d_weight, 2: torch.nn.grad.conv2d_weight, 3: torch.nn.grad.conv3d_weight}

# (family, per-sample input shape, hidden, opts): tiny, two layers each
CASES = [
    ("mlp", (2, 3, 4), (4, 4), {}),
    ("elman", (5, 2), (4, 4), {}),
    ("lstm", (5, 3), (4, 4), {}),
    ("cnn1d", (3, 7), (4, 4), {}),
    ("cnn2d", (6, 6), (3, 4), {}),
    ("cnn2d", (1, 6, 6), (3, 4), {}),
    ("cnn3d", (5, 5, 5), (2, 3), {}),
    ("cnn3d", (1, 5, 5, 5), (2, 3), {}),
    ("bert", (5, 3), (8, 8), {"nhead": 2}),
]
CASE_IDS = [f"{f}-{'x'.join(map(str, s))}" for f, s, _, _ in CASES]


def _build(family, task, shape, hidden, opts, *, seed=0, **kw):
    torch.manual_seed(seed)
    return build_model(family, task, shape, 3, hidden=hidden, **opts, **kw)


def _hook_layers(model: nn.Module):
    """Forward hooks on every Linear / ConvNd storing [A, Δ] per call (Δ via a tensor hook)."""
    calls: dict[str, list[list]] = {}
    handles = []
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Linear, *CONVS)):

            def fwd(m, inp, out, name=name):
                entry = [inp[0].detach(), None]
                calls.setdefault(name, []).append(entry)
                out.register_hook(lambda g, entry=entry: entry.__setitem__(1, g.detach()))

            handles.append(mod.register_forward_hook(fwd))
    return calls, handles


def _grads_from_calls(mod: nn.Module, calls: list[list]) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias gradients rebuilt from the hooked (A, Δ) pairs of one module."""
    gw = torch.zeros_like(mod.weight)
    gb = torch.zeros(mod.weight.shape[0], dtype=mod.weight.dtype)
    for a, d in calls:
        if isinstance(mod, nn.Linear):
            a2, d2 = a.reshape(-1, mod.in_features), d.reshape(-1, mod.out_features)
            gw += d2.T @ a2
            gb += d2.sum(0)
        else:
            nd = a.dim() - 2
            gw += CONV_WEIGHT_GRAD[nd](a, mod.weight.shape, d, mod.stride, mod.padding, mod.dilation, mod.groups)
            gb += d.sum(dim=[0, *range(2, d.dim())])
    return gw, gb


def _loss(task: str, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if task == "classify":
        return nn.functional.cross_entropy(out, torch.tensor([0, 1, 2, 1]))
    return nn.functional.mse_loss(out, x)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize(("family", "shape", "hidden", "opts"), CASES, ids=CASE_IDS)
def test_shapes_gradients_and_hookability(family, shape, hidden, opts, task) -> None:
    model = _build(family, task, shape, hidden, opts).to(DT)
    assert (model.family, model.task, model.input_shape) == (family, task, shape)
    hookable = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Linear, *CONVS))}
    owned = {f"{n}.{p}" for n, m in hookable.items() for p, _ in m.named_parameters(recurse=False)}
    exempt = {n for n, m in model.named_modules() if isinstance(m, (nn.LayerNorm, LearnedPositions))}
    for pname, _ in model.named_parameters():
        assert pname in owned or pname.rsplit(".", 1)[0] in exempt, f"{pname} is not in a Linear/ConvNd"

    calls, handles = _hook_layers(model)
    x = torch.randn(4, *shape, dtype=DT)
    out = model(x)
    for h in handles:
        h.remove()
    assert tuple(out.shape) == ((4, 3) if task == "classify" else (4, *shape))
    assert set(calls) == set(hookable), f"never called: {set(hookable) - set(calls)}"
    _loss(task, out, x).backward()

    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, f"{pname}: zero or non-finite gradient"
    # every weight gradient is exactly what a recorder rebuilds from its hooks
    for name, mod in hookable.items():
        assert all(d is not None for _, d in calls[name]), f"{name}: output never reached the loss"
        gw, gb = _grads_from_calls(mod, calls[name])
        torch.testing.assert_close(gw, mod.weight.grad, atol=1e-10, rtol=1e-10, msg=f"{name}.weight")
        torch.testing.assert_close(gb, mod.bias.grad, atol=1e-10, rtol=1e-10, msg=f"{name}.bias")


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "linear"])
@pytest.mark.parametrize("hidden", [[32], [8], [64], [128], [8, 8, 8]], ids=str)
def test_mlp_paper_widths_on_mnist_shape(hidden, activation, task) -> None:
    torch.manual_seed(0)
    model = build_model("mlp", task, (28, 28), 10, hidden=hidden, activation=activation)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [lin.out_features for lin in linears] == [*hidden, 10 if task == "classify" else 784]
    assert linears[0].in_features == 784
    x = torch.rand(4, 28, 28)
    out = model(x)
    assert tuple(out.shape) == ((4, 10) if task == "classify" else (4, 28, 28))
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_mlp_activation_is_applied() -> None:
    x = torch.randn(4, 6)
    outs = {a: _build("mlp", "classify", (6,), (5,), {}, activation=a)(x) for a in ("relu", "tanh", "linear")}
    assert not torch.allclose(outs["relu"], outs["tanh"]) and not torch.allclose(outs["relu"], outs["linear"])
    lin = _build("mlp", "classify", (6,), (5,), {}, activation="linear")
    w = lin.layers[1].weight @ lin.layers[0].weight
    b = lin.layers[1].weight @ lin.layers[0].bias + lin.layers[1].bias
    torch.testing.assert_close(outs["linear"], x @ w.T + b)


def test_elman_uses_activation_as_its_nonlinearity() -> None:
    model = _build("elman", "autoencode", (5, 2), (4,), {}, activation="relu")
    assert model.rnn.nonlinearity == "relu"
    out, _ = model.rnn(torch.randn(3, 5, 2))
    assert (out >= 0).all()


@pytest.mark.parametrize(("family", "shape", "hidden", "opts"), CASES, ids=CASE_IDS)
def test_same_seed_same_outputs(family, shape, hidden, opts) -> None:
    x = torch.randn(4, *shape)
    for task in TASKS:
        a = _build(family, task, shape, hidden, opts, seed=7)(x)
        b = _build(family, task, shape, hidden, opts, seed=7)(x)
        c = _build(family, task, shape, hidden, opts, seed=8)(x)
        assert torch.equal(a, b)
        assert not torch.equal(a, c)


def test_no_batchnorm_and_no_dropout_by_default() -> None:
    for (family, shape, hidden, opts), task in itertools.product(CASES, TASKS):
        model = _build(family, task, shape, hidden, opts)
        for m in model.modules():
            assert not isinstance(m, nn.modules.batchnorm._BatchNorm), family
            assert not isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)), family
            if isinstance(m, nn.Dropout):
                assert m.p == 0.0, family
    bert = build_model("bert", "classify", (5, 3), 2, hidden=(8,), nhead=2, dropout=0.1)
    assert bert.blocks[0].self_attn.dropout == 0.1 and bert.blocks[0].dropout.p == 0.1


def test_family_specific_structure() -> None:
    cls3 = build_model("cnn3d", "classify", (9, 9, 9), 2, hidden=(2, 2))
    assert all(c.stride == (2, 2, 2) for c in cls3.convs)
    ae3 = build_model("cnn3d", "autoencode", (9, 9, 9), None, hidden=(2, 2))
    assert all(c.stride == (1, 1, 1) for c in ae3.convs) and ae3.decoder.out_channels == 1
    ae1 = build_model("cnn1d", "autoencode", (53, 20), None, hidden=(8,))
    assert ae1.convs[0].in_channels == 53 and ae1.decoder.out_channels == 53
    assert ae1.convs[0].kernel_size == (3,) and ae1.convs[0].padding == (1,)
    bert = build_model("bert", "autoencode", (20, 53), None, hidden=(16, 16))
    assert len(bert.blocks) == 2 and bert.blocks[0].linear1.out_features == 32
    assert bert.blocks[0].self_attn.num_heads == 4 and bert.positions.max_len == 20
    lstm = build_model("lstm", "classify", (10, 5), 2, hidden=(6, 6, 6))
    assert lstm.rnn.num_layers == 3 and lstm.rnn.hidden_size == 6


def test_parameter_names_lstm_example() -> None:
    model = build_model("lstm", "classify", (10, 5), 2)
    assert [n for n, _ in model.named_parameters()] == [
        "rnn.layers.0.ih.weight",
        "rnn.layers.0.ih.bias",
        "rnn.layers.0.hh.weight",
        "rnn.layers.0.hh.bias",
        "head.weight",
        "head.bias",
    ]
    assert tuple(model.rnn.layers[0].ih.weight.shape) == (128, 5)


def test_registry() -> None:
    assert available_families() == ["bert", "cnn1d", "cnn2d", "cnn3d", "elman", "lstm", "mlp"]
    with pytest.raises(ValueError, match="already registered"):
        register("mlp")(lambda *a: None)


@pytest.mark.parametrize(
    ("args", "kwargs", "pattern"),
    [
        (("transformer", "classify", (5, 3), 2), {}, r"'transformer'.*available: bert, cnn1d.*mlp"),
        (("mlp", "classify", (5,), 2), {"activation": "softplus"}, r"'softplus'.*relu, tanh, sigmoid, linear"),
        (("mlp", "regress", (5,), 2), {}, r"'regress'.*classify, autoencode"),
        (("mlp", "classify", (5,), 1), {}, "n_classes >= 2"),
        (("mlp", "classify", (5, 0), 2), {}, "input_shape"),
        (("mlp", "classify", (5,), 2), {"hidden": (8, -1)}, "hidden"),
        (("mlp", "classify", (5,), 2), {"nhead": 2}, r"unknown option\(s\) nhead; allowed: \(none\)"),
        (("lstm", "classify", (5,), 2), {}, r"lstm: input_shape must be \(T, F\)"),
        (("elman", "classify", (5, 2), 2), {"hidden": (8, 4)}, r"equal.*\[8, 4\]"),
        (("cnn1d", "classify", (5,), 2), {}, r"\(C, T\)"),
        (("cnn2d", "classify", (5, 5, 5, 5), 2), {}, r"\(H, W\) or \(C, H, W\)"),
        (("cnn3d", "autoencode", (5, 5, 5), None), {"stride": 2}, "stride 1"),
        (("cnn2d", "classify", (5, 5), 2), {"kernel_size": 4}, "odd"),
        (("cnn2d", "classify", (5, 5), 2), {"hidden": ()}, "at least one"),
        (("bert", "classify", (5, 3), 2), {"hidden": (10,)}, r"d_model=10.*nhead=4"),
        (("bert", "classify", (5, 3), 2), {"hidden": (8,), "nhead": 2, "max_len": 4}, r"max_len=4.*T=5"),
    ],
)
def test_bad_arguments_raise_input_error(args, kwargs, pattern) -> None:
    with pytest.raises(InputError, match=pattern):
        build_model(*args, **kwargs)


def test_wrong_input_shape_at_forward() -> None:
    model = build_model("cnn2d", "classify", (6, 6), 2, hidden=(2,))
    with pytest.raises(ValueError, match=r"expected input \(N, 6, 6\)"):
        model(torch.randn(4, 1, 6, 6))
