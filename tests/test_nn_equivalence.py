"""autospec.nn modules vs their torch counterparts, in float64: outputs and gradients to 1e-10.

Also checks the property the spectral recorder relies on: every weight lives in an nn.Linear
that is called as a module, so the (A, Δ) pairs caught by hooks rebuild every weight gradient.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from autospec.nn import LSTM, ElmanRNN, LearnedPositions, MultiheadAttention, TransformerEncoderLayer

DT = torch.float64
TOL = {"atol": 1e-10, "rtol": 1e-10}


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=DT)


def _backward_random_functional(outputs: list[torch.Tensor], seed: int) -> None:
    """Backward of sum_k <R_k, out_k> with fixed random R_k (the same for both models)."""
    loss = sum((_randn(*o.shape, seed=seed + i) * o).sum() for i, o in enumerate(outputs))
    loss.backward()


def _leaf(x: torch.Tensor) -> torch.Tensor:
    return x.detach().clone().requires_grad_(True)


def _assert_grads_match(ours: nn.Module, theirs: nn.Module, mapping: dict[str, tuple[str, slice | None]]) -> None:
    our_params = dict(ours.named_parameters())
    their_params = dict(theirs.named_parameters())
    assert set(mapping) == set(our_params), "the mapping must name every parameter of ours"
    assert {t for t, _ in mapping.values()} == set(their_params), "... and cover every torch parameter"
    assert sum(p.numel() for p in our_params.values()) == sum(p.numel() for p in their_params.values())
    for name, (tname, sl) in mapping.items():
        mine, ref = our_params[name], their_params[tname]
        ref_w, ref_g = (ref, ref.grad) if sl is None else (ref[sl], ref.grad[sl])
        torch.testing.assert_close(mine.detach(), ref_w.detach(), atol=0, rtol=0, msg=f"value {name}")
        assert mine.grad is not None, name
        torch.testing.assert_close(mine.grad, ref_g, **TOL, msg=f"gradient {name} vs {tname}")


def _rnn_mapping(num_layers: int) -> dict[str, tuple[str, slice | None]]:
    return {
        f"layers.{i}.{part}.{kind}": (f"{kind}_{part}_l{i}", None)
        for i in range(num_layers)
        for part in ("ih", "hh")
        for kind in ("weight", "bias")
    }


def _mha_mapping(e: int, prefix: str = "") -> dict[str, tuple[str, slice | None]]:
    m: dict[str, tuple[str, slice | None]] = {}
    for i, proj in enumerate(("q_proj", "k_proj", "v_proj")):
        m[f"{prefix}{proj}.weight"] = (f"{prefix}in_proj_weight", slice(i * e, (i + 1) * e))
        m[f"{prefix}{proj}.bias"] = (f"{prefix}in_proj_bias", slice(i * e, (i + 1) * e))
    for kind in ("weight", "bias"):
        m[f"{prefix}out_proj.{kind}"] = (f"{prefix}out_proj.{kind}", None)
    return m


def _mha_sep_mapping(e: int) -> dict[str, tuple[str, slice | None]]:
    m = _mha_mapping(e)
    for proj in ("q_proj", "k_proj", "v_proj"):
        m[f"{proj}.weight"] = (f"{proj}_weight", None)
    return m


# ---------------------------------------------------------------- Elman RNN


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("with_h0", [False, True])
def test_elman_matches_torch_rnn(nonlinearity: str, with_h0: bool) -> None:
    torch.manual_seed(0)
    ref = nn.RNN(3, 5, num_layers=2, nonlinearity=nonlinearity, batch_first=True).to(DT)
    ours = ElmanRNN.from_torch(ref)
    assert ours.layers[0].ih.weight.dtype == DT
    x = _randn(4, 6, 3, seed=1)
    h0 = _randn(2, 4, 5, seed=2) if with_h0 else None
    xs = [_leaf(x), _leaf(x)]
    hs = [_leaf(h0), _leaf(h0)] if with_h0 else [None, None]
    out_r, hn_r = ref(xs[0], hs[0])
    out_o, hn_o = ours(xs[1], hs[1])
    torch.testing.assert_close(out_o, out_r, **TOL)
    torch.testing.assert_close(hn_o, hn_r, **TOL)
    _backward_random_functional([out_r, hn_r], seed=10)
    _backward_random_functional([out_o, hn_o], seed=10)
    _assert_grads_match(ours, ref, _rnn_mapping(2))
    torch.testing.assert_close(xs[1].grad, xs[0].grad, **TOL)
    if with_h0:
        torch.testing.assert_close(hs[1].grad, hs[0].grad, **TOL)


def test_elman_time_major_matches_torch() -> None:
    torch.manual_seed(0)
    ref = nn.RNN(3, 4, num_layers=1, batch_first=False).to(DT)
    ours = ElmanRNN.from_torch(ref)
    assert ours.batch_first is False
    x = _randn(6, 2, 3, seed=3)  # (T, N, F)
    torch.testing.assert_close(ours(x)[0], ref(x)[0], **TOL)
    torch.testing.assert_close(ours(x)[1], ref(x)[1], **TOL)


def test_elman_init_matches_torch_rule() -> None:
    torch.manual_seed(0)
    rnn = ElmanRNN(7, 16, num_layers=2)
    bound = 1 / 16**0.5
    for name, p in rnn.named_parameters():
        assert p.abs().max() <= bound, name
        assert p.abs().max() > 0.5 * bound, name  # really U(-k, k), not zeros / tiny


# ---------------------------------------------------------------- LSTM


@pytest.mark.parametrize("with_state", [False, True])
def test_lstm_matches_torch_lstm(with_state: bool) -> None:
    torch.manual_seed(0)
    ref = nn.LSTM(3, 5, num_layers=2, batch_first=True).to(DT)
    ours = LSTM.from_torch(ref)
    x = _randn(4, 6, 3, seed=1)
    xs = [_leaf(x), _leaf(x)]
    if with_state:
        h0, c0 = _randn(2, 4, 5, seed=2), _randn(2, 4, 5, seed=3)
        states = [(_leaf(h0), _leaf(c0)), (_leaf(h0), _leaf(c0))]
    else:
        states = [None, None]
    out_r, (h_r, c_r) = ref(xs[0], states[0])
    out_o, (h_o, c_o) = ours(xs[1], states[1])
    for a, b in ((out_o, out_r), (h_o, h_r), (c_o, c_r)):
        torch.testing.assert_close(a, b, **TOL)
    _backward_random_functional([out_r, h_r, c_r], seed=20)
    _backward_random_functional([out_o, h_o, c_o], seed=20)
    _assert_grads_match(ours, ref, _rnn_mapping(2))
    torch.testing.assert_close(xs[1].grad, xs[0].grad, **TOL)
    if with_state:
        for k in range(2):
            torch.testing.assert_close(states[1][k].grad, states[0][k].grad, **TOL)


# ---------------------------------------------------------------- multi-head attention


def _padding_mask(n: int, s: int) -> torch.Tensor:
    kpm = torch.zeros(n, s, dtype=torch.bool)
    kpm[0, -2:] = True  # sample 0 has its last two keys padded
    kpm[2, 1] = True
    return kpm


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "linear"])
def test_lstm_activation_replaces_tanh_in_candidate_and_output(activation: str) -> None:
    """Oracle: the LSTM equations written out with ``act`` in place of tanh, gates sigmoid."""
    act = {"relu": torch.relu, "sigmoid": torch.sigmoid, "linear": lambda v: v}[activation]
    torch.manual_seed(0)
    lstm = LSTM(3, 4, num_layers=2, activation=activation).to(DT)
    tanh_lstm = LSTM(3, 4, num_layers=2).to(DT)
    tanh_lstm.load_state_dict(lstm.state_dict())
    x = _randn(2, 5, 3, seed=1)
    out, (_, c_n) = lstm(x)
    seq = x
    for layer in lstm.layers:
        h = c = torch.zeros(2, 4, dtype=DT)
        steps = []
        for t in range(5):
            z = seq[:, t] @ layer.ih.weight.T + layer.ih.bias + h @ layer.hh.weight.T + layer.hh.bias
            i, f, g, o = z.split(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * act(g)
            h = torch.sigmoid(o) * act(c)
            steps.append(h)
        seq = torch.stack(steps, dim=1)
    torch.testing.assert_close(out, seq, **TOL)
    torch.testing.assert_close(c_n[-1], c, **TOL)
    assert not torch.allclose(out, tanh_lstm(x)[0])  # the activation changes the function


@pytest.mark.parametrize("masks", ["none", "key_padding", "key_padding+float_attn", "bool_attn_3d"])
@pytest.mark.parametrize("average", [True, False])
def test_mha_matches_torch_self_attention(masks: str, average: bool) -> None:
    torch.manual_seed(0)
    n, t, e, h = 4, 5, 8, 2
    ref = nn.MultiheadAttention(e, h, batch_first=True).to(DT)
    with torch.no_grad():  # torch starts biases at 0; make them matter
        ref.in_proj_bias.normal_()
        ref.out_proj.bias.normal_()
    ours = MultiheadAttention.from_torch(ref)
    kw: dict[str, torch.Tensor] = {}
    if "key_padding" in masks:
        kw["key_padding_mask"] = _padding_mask(n, t)
    if "float_attn" in masks:  # both masks additive floats (torch deprecates mixing bool and float)
        kw["attn_mask"] = _randn(t, t, seed=5)
        kw["key_padding_mask"] = torch.zeros(n, t, dtype=DT).masked_fill(kw["key_padding_mask"], float("-inf"))
    if masks == "bool_attn_3d":
        kw["attn_mask"] = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1).repeat(n * h, 1, 1)
    x = _randn(n, t, e, seed=1)
    xs = [_leaf(x), _leaf(x)]
    out_r, w_r = ref(xs[0], xs[0], xs[0], need_weights=True, average_attn_weights=average, **kw)
    out_o, w_o = ours(xs[1], xs[1], xs[1], need_weights=True, average_attn_weights=average, **kw)
    torch.testing.assert_close(out_o, out_r, **TOL)
    torch.testing.assert_close(w_o, w_r, **TOL)
    if "key_padding" in masks:
        assert torch.all(w_o[0, ..., -2:] == 0)
    _backward_random_functional([out_r, w_r], seed=30)
    _backward_random_functional([out_o, w_o], seed=30)
    _assert_grads_match(ours, ref, _mha_mapping(e))
    torch.testing.assert_close(xs[1].grad, xs[0].grad, **TOL)
    # need_weights=False goes through torch's SDPA path: same output
    out_r2, none_r = ref(x, x, x, need_weights=False, **kw)
    out_o2, none_o = ours(x, x, x, **kw)
    assert none_r is None and none_o is None
    torch.testing.assert_close(out_o2, out_r2, **TOL)


def test_mha_matches_torch_cross_attention_kdim_vdim() -> None:
    torch.manual_seed(0)
    n, tgt_len, src_len, e = 3, 4, 7, 6
    ref = nn.MultiheadAttention(e, 3, batch_first=True, kdim=5, vdim=2).to(DT)
    ours = MultiheadAttention.from_torch(ref)
    q, k, v = _randn(n, tgt_len, e, seed=1), _randn(n, src_len, 5, seed=2), _randn(n, src_len, 2, seed=3)
    kpm = _padding_mask(n, src_len)
    out_r, w_r = ref(q, k, v, key_padding_mask=kpm, need_weights=True)
    out_o, w_o = ours(q, k, v, key_padding_mask=kpm, need_weights=True)
    torch.testing.assert_close(out_o, out_r, **TOL)
    torch.testing.assert_close(w_o, w_r, **TOL)
    _backward_random_functional([out_r], seed=40)
    _backward_random_functional([out_o], seed=40)
    _assert_grads_match(ours, ref, _mha_sep_mapping(e))


def test_time_major_attention_and_encoder_layer() -> None:
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(4, 2, bias=False, batch_first=False).to(DT)
    ours = MultiheadAttention.from_torch(ref)
    assert all(lin.bias is None for lin in (ours.q_proj, ours.k_proj, ours.v_proj, ours.out_proj))
    x = _randn(5, 3, 4, seed=1)  # (L, N, E)
    torch.testing.assert_close(ours(x, x, x)[0], ref(x, x, x)[0], **TOL)
    ref_layer = nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0).to(DT)  # torch default: time-major
    our_layer = TransformerEncoderLayer.from_torch(ref_layer)
    assert our_layer.batch_first is False
    torch.testing.assert_close(our_layer(x), ref_layer(x), **TOL)


# ---------------------------------------------------------------- Transformer encoder layer


@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_encoder_layer_matches_torch(activation: str, norm_first: bool, padded: bool) -> None:
    torch.manual_seed(0)
    n, t, d = 4, 5, 8
    ref = nn.TransformerEncoderLayer(
        d, 2, dim_feedforward=12, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first
    ).to(DT)
    with torch.no_grad():  # non-trivial LayerNorm affine parameters and attention biases
        for p in (ref.norm1.weight, ref.norm1.bias, ref.norm2.weight, ref.norm2.bias, ref.self_attn.in_proj_bias):
            p.add_(0.3 * torch.randn_like(p))
    ours = TransformerEncoderLayer.from_torch(ref)
    assert ours.norm_first is norm_first and ours.activation == activation
    kpm = _padding_mask(n, t) if padded else None
    x = _randn(n, t, d, seed=1)
    xs = [_leaf(x), _leaf(x)]
    out_r = ref(xs[0], src_key_padding_mask=kpm)
    out_o = ours(xs[1], src_key_padding_mask=kpm)
    torch.testing.assert_close(out_o, out_r, **TOL)
    _backward_random_functional([out_r], seed=50)
    _backward_random_functional([out_o], seed=50)
    mapping = _mha_mapping(d, prefix="self_attn.")
    for mod in ("linear1", "linear2", "norm1", "norm2"):
        for kind in ("weight", "bias"):
            mapping[f"{mod}.{kind}"] = (f"{mod}.{kind}", None)
    _assert_grads_match(ours, ref, mapping)
    torch.testing.assert_close(xs[1].grad, xs[0].grad, **TOL)


# ---------------------------------------------------------------- every weight in a called Linear


def _hook_linears(model: nn.Module) -> tuple[dict[str, list[list]], list]:
    """Forward hooks on every nn.Linear storing [A, Δ] per call (Δ from a tensor hook on the output)."""
    calls: dict[str, list[list]] = {}
    handles = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):

            def fwd(m, inp, out, name=name):
                entry = [inp[0].detach(), None]
                calls.setdefault(name, []).append(entry)
                out.register_hook(lambda g, entry=entry: entry.__setitem__(1, g.detach()))

            handles.append(mod.register_forward_hook(fwd))
    return calls, handles


def _output_and_state(out: tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    return [out[0], *out[1]]


def _module_cases():
    torch.manual_seed(0)
    x = _randn(3, 5, 4, seed=1)
    kpm = _padding_mask(3, 5)
    return [
        ("elman", ElmanRNN(4, 6, num_layers=2).to(DT), lambda m: list(m(x))),
        ("lstm", LSTM(4, 6, num_layers=2).to(DT), lambda m: _output_and_state(m(x))),
        ("mha", MultiheadAttention(4, 2).to(DT), lambda m: [m(x, x, x, key_padding_mask=kpm)[0]]),
        (
            "encoder",
            TransformerEncoderLayer(4, 2, 8, activation="gelu").to(DT),
            lambda m: [m(x, src_key_padding_mask=kpm)],
        ),
    ]


@pytest.mark.parametrize("case", range(4), ids=["elman", "lstm", "mha", "encoder"])
def test_every_weight_is_in_a_called_linear(case: int) -> None:
    name, model, run = _module_cases()[case]
    linears = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    owned = {f"{n}.{p}" for n, m in linears.items() for p, _ in m.named_parameters(recurse=False)}
    norms = {n for n, m in model.named_modules() if isinstance(m, nn.LayerNorm)}
    for pname, _ in model.named_parameters():
        assert pname in owned or pname.rsplit(".", 1)[0] in norms, f"{name}: {pname} is not in a Linear"

    calls, handles = _hook_linears(model)
    outs = run(model)
    for h in handles:
        h.remove()
    assert set(calls) == set(linears), f"{name}: Linear modules never called: {set(linears) - set(calls)}"
    _backward_random_functional(outs, seed=60)
    # The gradient rebuilt from the hooked (A, Δ) pairs equals autograd's: nothing reaches a
    # weight except through its module call.
    for lname, lin in linears.items():
        assert all(d is not None for _, d in calls[lname]), f"{name}: {lname} output never reached the loss"
        a = torch.cat([a.reshape(-1, lin.in_features) for a, _ in calls[lname]])
        d = torch.cat([d.reshape(-1, lin.out_features) for _, d in calls[lname]])
        torch.testing.assert_close(d.T @ a, lin.weight.grad, **TOL, msg=f"{name}: {lname}.weight")
        if lin.bias is not None:
            torch.testing.assert_close(d.sum(0), lin.bias.grad, **TOL, msg=f"{name}: {lname}.bias")
    if name in ("elman", "lstm"):
        # hh is called once per time step per layer (T = 5), ih once per layer on the sequence
        assert len(calls["layers.1.hh"]) == 5 and len(calls["layers.1.ih"]) == 1


# ---------------------------------------------------------------- positions and errors


def test_learned_positions_adds_table_and_checks_length() -> None:
    torch.manual_seed(0)
    pos = LearnedPositions(6, 3).to(DT)
    x = _randn(2, 4, 3, seed=1)
    torch.testing.assert_close(pos(x), x + pos.weight[:4], atol=0, rtol=0)
    g = _randn(2, 4, 3, seed=2)
    (pos(x) * g).sum().backward()
    torch.testing.assert_close(pos.weight.grad[:4], g.sum(0), **TOL)
    assert torch.all(pos.weight.grad[4:] == 0)
    with pytest.raises(ValueError, match=r"T=7.*max_len=6"):
        pos(_randn(2, 7, 3, seed=3))


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match=r"'softplus'.*relu"):
        ElmanRNN(3, 4, nonlinearity="softplus")
    with pytest.raises(ValueError, match="num_heads=3"):
        MultiheadAttention(8, 3)
    with pytest.raises(ValueError, match="'swish'"):
        TransformerEncoderLayer(8, 2, 16, activation="swish")
    with pytest.raises(ValueError, match="bidirectional"):
        ElmanRNN.from_torch(nn.RNN(3, 4, bidirectional=True))
    with pytest.raises(ValueError, match="proj_size"):
        LSTM.from_torch(nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(ValueError, match="add_bias_kv"):
        MultiheadAttention.from_torch(nn.MultiheadAttention(4, 2, add_bias_kv=True))
    with pytest.raises(ValueError, match="input_size=3"):
        ElmanRNN(3, 4)(torch.randn(2, 5, 2))
    with pytest.raises(ValueError, match="key_padding_mask shape"):
        x = torch.randn(2, 5, 4)
        MultiheadAttention(4, 2)(x, x, x, key_padding_mask=torch.zeros(2, 4, dtype=torch.bool))
