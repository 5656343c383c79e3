"""Training runs: config, every family x task with rank bounds, real MNIST, outputs, determinism,
divergence and the command line's exit codes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml

from autospec.cli import main as cli_main
from autospec.data.dataset import Dataset, save_dataset
from autospec.errors import InputError
from autospec.models import available_families, build_model
from autospec.spectral import SpectralRecorder, SpectraWriter, numerical_rank, read_metadata
from autospec.training import load_run_config, run_schema, train
from autospec.training.recorders import recording
from autospec.training.sinks import snapshot_frame

N, C = 6, 3  # tiny: N below most widths, so the N_eff bounds bind
SHAPES = {  # (T, C) sequences for cnn1d are transposed to (C, T) by the training data adapter
    "mlp": ((5, 4), {"kind": "volumes"}),
    "elman": ((3, 4), {"kind": "sinusoid", "axes": ["sample", "time", "channel"]}),
    "lstm": ((3, 4), {"kind": "timecourses", "axes": ["subject", "time", "component"]}),
    "bert": ((3, 4), {"kind": "timecourses", "axes": ["subject", "time", "component"]}),
    "cnn1d": ((3, 6), {"kind": "timecourses", "axes": ["subject", "time", "component"]}),
    "cnn2d": ((6, 2, 2), {"kind": "mnist"}),  # (C, H, W)
    "cnn3d": ((2, 2, 2, 2), {"kind": "spatialmaps"}),  # (C, X, Y, Z)
}
HIDDEN = {"cnn3d": 32}
OPTIONS = {"bert": {"nhead": 2}}


def make_dataset(path: Path, shape, meta, *, n=N, n_classes=C, seed=0, scale=1.0) -> Path:
    rng = np.random.default_rng(seed)
    save_dataset(path, Dataset(
        X=(scale * rng.normal(size=(n, *shape))).astype(np.float32), y=np.arange(n) % n_classes,
        groups=(np.arange(n) // 2) % 2, subject_ids=[f"sub-{i:03d}" for i in range(n)],
        class_names=[f"c{k}" for k in range(n_classes)], group_names=["ctrl", "pat"], meta=meta,
    ))  # fmt: skip
    return path


def config(data: Path, family="mlp", task="classify", hidden=(16,), **sections) -> dict:
    cfg = {"data": str(data), "model": {"family": family, "task": task, "hidden": list(hidden),
                                        "options": OPTIONS.get(family, {})},
           "training": {"epochs": 3, "lr": 0.01, "checkpoint_every": 0, "device": "cpu"}}  # fmt: skip
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    return cfg


def run(tmp_path, cfg: dict, out="run", **kw):
    return train(load_run_config(cfg), tmp_path / out, progress=False, **kw)


# ---------------------------------------------------------------------------------- config
def test_schema_families_are_the_registry():
    assert sorted(run_schema()["properties"]["model"]["properties"]["family"]["enum"]) == available_families()


def test_config_defaults_and_relative_data_path(tmp_path):
    (tmp_path / "cfgs").mkdir()
    p = tmp_path / "cfgs" / "run.yaml"
    p.write_text(yaml.safe_dump({"data": "../d.npz", "model": {"family": "mlp"}}))
    cfg = load_run_config(p)
    assert cfg.data == (tmp_path / "d.npz").resolve()
    assert cfg.model == {"family": "mlp", "task": "classify", "hidden": [32], "activation": "relu", "options": {}}
    assert cfg.training["epochs"] == 20 and cfg.training["lr"] == 0.001 and cfg.training["batch_size"] is None
    assert cfg.training["device"] == "auto" and cfg.training["deterministic"] is True
    assert cfg.training["checkpoint_every"] == 5 and cfg.training["threads"] is None
    assert cfg.recording == {"every": 1, "schedule": None, "async": True, "stats": ["grad", "act", "delta"],
                             "top_k": None, "groups": True, "subjects": False, "subject_stats": ["grad"],
                             "subject_keys": None, "group_sampling": "all", "sampling_seed": 0}  # fmt: skip
    assert cfg.raw["split"] == "none" and not cfg.settings.split.held_out
    over = load_run_config(p, overrides={"training.threads": 3, "training.device": None})
    assert over.training["threads"] == 3 and over.training["device"] == "auto"


@pytest.mark.parametrize(
    "patch, field",
    [
        ({"training": {"lr": -1}}, "run config field training.lr: -1 is less than the minimum of 0"),
        ({"training": {"epochs": 0}}, "run config field training.epochs:"),
        ({"training": {"epoch": 3}}, "run config field training.epoch: unknown field"),
        ({"model": {"family": "resnet"}}, "run config field model.family:"),
        ({"recording": {"stats": ["grad", "hess"]}}, "run config field recording.stats[1]:"),
        ({"training": {"batch_size": 0}}, "run config field training.batch_size:"),
    ],
)
def test_bad_config_fields_are_named(patch, field):
    doc = {"data": "x.npz", "model": {"family": "mlp"}}
    for k, v in patch.items():
        doc[k] = {**doc.get(k, {}), **v}
    with pytest.raises(InputError) as err:
        load_run_config(doc)
    assert str(err.value).startswith(field)


# ---------------------------------------------------------------------------------- families
def _rows_per_sample(family: str, task: str, key: str, shape) -> int:
    """Rows of A and Δ each sample contributes to a weight's gradient (N_eff = N_g x this)."""
    if key.startswith("head") or family == "mlp":
        return 1
    if family in ("elman", "lstm", "bert"):
        return shape[0]  # weights reused over the T time steps / tokens
    spatial = shape[:1] if family == "cnn1d" else shape[1:]  # cnn1d: (T, C) transposed to (C, T)
    stride = 2 if family == "cnn3d" and task == "classify" else 1
    return math.prod((d - 1) // stride + 1 for d in spatial)  # output positions (kernel 3, padding 1)


def _head_key(family: str, model) -> str:
    return f"layers.{len(model.layers) - 1}.weight" if family == "mlp" else "head.weight"


@pytest.mark.parametrize("task", ["classify", "autoencode"])
@pytest.mark.parametrize("family", sorted(SHAPES))
def test_every_family_and_task_trains_and_respects_rank_bounds(tmp_path, family, task):
    shape, meta = SHAPES[family]
    data = make_dataset(tmp_path / "d.npz", shape, meta)
    width = HIDDEN.get(family, 16)
    res = run(tmp_path, config(data, family, task, hidden=(width,)))
    assert res.status == "completed" and res.epochs_completed == 3
    df = pd.read_parquet(tmp_path / "run" / "spectra.parquet")
    model = build_model(
        family,
        task,
        shape if family != "cnn1d" else shape[::-1],
        C,
        hidden=[width],
        activation="relu",
        **OPTIONS.get(family, {}),
    )
    weights = {n: p for n, p in model.named_parameters() if p.dim() >= 2}
    assert sorted(df.key.unique()) == sorted(weights)
    assert sorted(df.step.unique()) == [0, 1, 2] and set(df.group.unique()) == {-1, 0, 1}
    assert np.isfinite(df.value).all() and (df.value >= 0).all()
    group_n = {-1: N, 0: 4, 1: 2}  # groups (i // 2) % 2 of samples 0..5
    checked = 0
    for (key, step, group), part in df[df.stat == "grad"].groupby(["key", "step", "group"]):
        p = weights[key]
        n_out, n_in = p.shape[0], p[0].numel()
        v = part.sort_values("index").value.to_numpy().copy()
        tol = float(v.max()) * max(n_out, n_in) * float(torch.finfo(torch.float32).eps) * 4
        rank = numerical_rank(v, (n_out, n_in), atol=tol)
        bound = min(n_out, n_in, group_n[group] * _rows_per_sample(family, task, key, shape))
        if task == "classify" and key == _head_key(family, model):
            bound = min(bound, C - 1)  # softmax cross-entropy: rows of Δ sum to 0
        assert rank <= bound, (key, step, group, rank, bound)
        checked += bound < min(n_out, n_in)
    assert checked > 0  # at least one bound below the trivial min(n_out, n_in) was tested
    adapter_keys = [k for k in weights if k != "positions.weight"]
    for stat in ("act", "delta"):
        assert set(df[df.stat == stat].key.unique()) == set(adapter_keys)


def test_cnn1d_time_courses_are_transposed_to_channels_first(tmp_path):
    data = make_dataset(tmp_path / "d.npz", (7, 3), {"kind": "timecourses", "axes": ["subject", "time", "component"]})
    run(tmp_path, config(data, "cnn1d", hidden=(4,)))
    info = json.loads((tmp_path / "run" / "run.json").read_text())["dataset"]
    assert info["X_shape"] == [N, 7, 3] and info["model_input_shape"] == [3, 7]
    assert info["transposed_to_channels_first"] is True
    # first conv layer's act has C*k = 9 columns, rows N*T; delta rows N*T as well
    df = pd.read_parquet(tmp_path / "run" / "spectra.parquet")
    act = df[(df.stat == "act") & (df.key == "convs.0.weight") & (df.group == -1) & (df.step == 0)]
    assert len(act) == min(3 * 3, N * 7)
    bad = make_dataset(tmp_path / "e.npz", (7, 3), {"kind": "mystery"})
    with pytest.raises(InputError, match="cnn1d needs to know"):
        run(tmp_path, config(bad, "cnn1d", hidden=(4,)), out="bad")


#: the paper's panels A-F (Table 1): task, width, activation
PANELS = {"A": ("autoencode", 32, "relu"), "B": ("classify", 32, "relu"), "C": ("autoencode", 32, "tanh"),
          "D": ("autoencode", 32, "sigmoid"), "E": ("autoencode", 8, "relu"), "F": ("autoencode", 64, "relu")}  # fmt: skip


@pytest.mark.parametrize("family", sorted(SHAPES))
def test_every_panel_of_every_family_differs_from_panel_a(tmp_path, family):
    """Panels C and D of the LSTM were once bit-identical to A (its activation was ignored)."""
    shape, meta = SHAPES[family]
    data = make_dataset(tmp_path / "d.npz", shape, meta)
    spectra = {}
    for panel, (task, width, act) in PANELS.items():
        cfg = config(data, family, task, hidden=(width,), training={"epochs": 2})
        cfg["model"]["activation"] = act
        run(tmp_path, cfg, out=panel)
        df = pd.read_parquet(tmp_path / panel / "spectra.parquet")
        spectra[panel] = df[df.stat == "grad"].set_index(["step", "key", "group", "index"]).value
    for panel in "BCDEF":
        assert not spectra[panel].equals(spectra["A"]), panel
    for panel in "CD":  # same shapes as A: the values themselves differ
        common = spectra["A"].index.intersection(spectra[panel].index)
        assert len(common) == len(spectra["A"])
        assert not np.allclose(spectra[panel][common], spectra["A"][common]), panel


@pytest.mark.parametrize("axes, transposed", [(["subject", "time", "component"], False),
                                              (["subject", "component", "time"], True)])  # fmt: skip
def test_cnn2d_trains_on_time_courses_as_one_channel_images(tmp_path, axes, transposed):
    t, c = 7, 3
    stored = (t, c) if not transposed else (c, t)
    data = make_dataset(tmp_path / "d.npz", stored, {"kind": "timecourses", "axes": axes})
    res = run(tmp_path, config(data, "cnn2d", hidden=(4,)))
    assert res.status == "completed"
    info = json.loads((tmp_path / "run" / "run.json").read_text())["dataset"]
    assert info["model_input_shape"] == [t, c] and info["transposed"] is transposed
    df = pd.read_parquet(tmp_path / "run" / "spectra.parquet")
    sel = df[(df.key == "convs.0.weight") & (df.group == -1) & (df.step == 0)]
    assert len(sel[sel.stat == "act"]) == 9  # A: (N·T·C) × (1·3·3), full column rank
    assert len(sel[sel.stat == "delta"]) == 4  # Δ: (N·T·C) × 4 output channels
    X = np.load(data)["X"]
    X = X.transpose(0, 2, 1) if transposed else X
    # oracle: σ(A) of the first conv = σ of the zero-padded 3 × 3 patches of every sample
    patches = F.unfold(torch.from_numpy(X).double().unsqueeze(1), 3, padding=1).transpose(1, 2).reshape(-1, 9)
    want = np.linalg.svd(patches.numpy(), compute_uv=False)
    np.testing.assert_allclose(sel[sel.stat == "act"].sort_values("index").value, want, rtol=1e-5)


# ---------------------------------------------------------------------------------- recording
def test_two_recorders_match_separate_recording():
    """The run's main + per-subject recorders in one step give what each gives alone (bert has a
    generic-path weight, LearnedPositions, whose replay must not leak into the other recorder)."""
    torch.manual_seed(0)
    model = build_model("bert", "classify", (5, 4), 3, hidden=[8], activation="relu", nhead=2)
    x, y, g = torch.randn(10, 5, 4), torch.randint(0, 3, (10,)), torch.tensor([0, 1] * 5)
    samples = torch.arange(10)

    def step(main, sub):
        model.zero_grad()
        with recording(main, sub, g, samples) as (s1, s2):
            F.cross_entropy(model(x), y).backward()
        return s1, s2

    both_main, both_sub = step(SpectralRecorder(model), SpectralRecorder(model, stats=("grad",)))
    alone_main, _ = step(SpectralRecorder(model), None)
    sub_rec = SpectralRecorder(model, stats=("grad",))
    model.zero_grad()
    with sub_rec.record(groups=samples) as alone_sub:
        F.cross_entropy(model(x), y).backward()
    for a, b in ((both_main, alone_main), (both_sub, alone_sub)):
        ia, ib = dict(a.items()), dict(b.items())
        assert ia.keys() == ib.keys() and ("positions.weight", "grad", -1) in ia
        for k, values in ia.items():
            np.testing.assert_array_equal(values, ib[k], err_msg=str(k))


def test_fast_frame_writes_the_same_bytes_as_snapshot_to_frame(tmp_path):
    torch.manual_seed(0)
    model = build_model("mlp", "classify", (6,), 3, hidden=[5], activation="relu")
    rec = SpectralRecorder(model, top_k=4)
    with rec.record(groups=torch.tensor([0, 1, 2, 1])) as snap:
        F.cross_entropy(model(torch.randn(4, 6)), torch.tensor([0, 1, 2, 0])).backward()
    for name, frame in (("a", snap.to_frame()), ("b", snapshot_frame(snap))):
        with SpectraWriter(tmp_path / f"{name}.parquet", {"run_id": "x"}) as w:
            w.write_frame(frame)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_minibatches_record_the_first_batch_and_subjects(tmp_path):
    n, bs = 20, 6
    data = make_dataset(tmp_path / "d.npz", (8,), {"kind": "volumes"}, n=n)
    res = run(tmp_path, config(data, "mlp", training={"batch_size": bs, "epochs": 4, "seed": 5},
                               recording={"subjects": True, "subject_keys": ["layers.0.*"]}))  # fmt: skip
    assert res.status == "completed"
    out = tmp_path / "run"
    gen = torch.Generator().manual_seed(5)
    sub = pd.read_parquet(out / "subject_spectra.parquet")
    assert set(sub.key) == {"layers.0.weight"} and set(sub.stat) == {"grad"}
    for epoch in range(4):
        first = sorted(torch.randperm(n, generator=gen)[:bs].tolist())
        got = sorted(set(sub[(sub.step == epoch) & (sub.group >= 0)].group))
        assert got == first, epoch  # the group column is the sample index of the first batch
    main = pd.read_parquet(out / "spectra.parquet")
    # the whole-batch gradient of the first batch: rank <= bs (layers.0 is 16 x 8, so <= 8 anyway)
    assert (
        main[(main.stat == "act") & (main.key == "layers.0.weight") & (main.group == -1)].groupby("step").size().max()
        <= bs
    )
    subjects = pd.read_csv(out / "subjects.tsv", sep="\t")
    assert list(subjects.columns) == ["index", "subject_id", "group", "class", "split"] and len(subjects) == n
    assert (subjects.split == "train").all()
    assert subjects.subject_id[3] == "sub-003" and subjects.group[2] == "pat"
    with pytest.raises(InputError, match=r"recording\.subject_keys: 'nope\.\*' matches no recordable weight"):
        run(tmp_path, config(data, "mlp", recording={"subjects": True, "subject_keys": ["nope.*"]}), out="bad")


def test_subject_stats_act_is_each_subjects_input_norm(tmp_path):
    # oracle: a subject's A_i at an MLP's first layer is its one input row, so σ(A_i) = ‖x_i‖
    data = make_dataset(tmp_path / "d.npz", (7,), {"kind": "volumes"}, n=10)
    run(tmp_path, config(data, "mlp", recording={"subjects": True, "subject_stats": ["grad", "act"]}))
    sub = pd.read_parquet(tmp_path / "run" / "subject_spectra.parquet")
    assert set(sub.stat) == {"grad", "act"}
    X = np.load(data)["X"].astype(np.float64)
    act = sub[(sub.stat == "act") & (sub.key == "layers.0.weight") & (sub.group >= 0)]
    for _, frame in act.groupby("step"):
        assert (frame.groupby("group").size() == 1).all()  # rank 1 per subject
        got = frame.set_index("group")["value"].sort_index().to_numpy()
        np.testing.assert_allclose(got, np.linalg.norm(X, axis=1), rtol=1e-5)


def test_every_k_records_every_kth_epoch_and_times_both(tmp_path):
    data = make_dataset(tmp_path / "d.npz", (5, 4), {"kind": "volumes"})
    run(tmp_path, config(data, training={"epochs": 7}, recording={"every": 3, "groups": False}))
    out = tmp_path / "run"
    df = pd.read_parquet(out / "spectra.parquet")
    assert sorted(df.step.unique()) == [0, 3, 6] and set(df.group) == {-1}
    metrics = pd.read_csv(out / "metrics.tsv", sep="\t")
    assert list(metrics.columns) == ["epoch", "loss", "accuracy", "wall_s", "recorded"]
    assert metrics.recorded.tolist() == [True, False, False, True, False, False, True]
    timing = json.loads((out / "run.json").read_text())["timing"]
    assert timing["n_recorded"] == 3 and timing["n_unrecorded"] == 4
    assert timing["mean_epoch_wall_s_recorded"] > 0 and timing["recorded_over_unrecorded"] > 0


# ---------------------------------------------------------------------------------- outputs
def test_outputs_run_json_and_manifest(tmp_path):
    data = make_dataset(tmp_path / "d.npz", (5, 4), {"kind": "volumes"})
    (tmp_path / "d.npz.manifest.json").write_text("{}")
    cfg_path = tmp_path / "run.yaml"
    cfg_path.write_text(yaml.safe_dump(config(Path("d.npz"), task="autoencode")))
    res = train(load_run_config(cfg_path), tmp_path / "out", progress=False)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["spectra.parquet", "metrics.tsv", "run.json", "model.pt", "manifest.json"]
    )
    rj = json.loads((out / "run.json").read_text())
    assert rj["status"] == "completed" and rj["run_id"] == res.run_id and rj["seed"] == 0
    assert rj["dataset"]["sha256"] and rj["dataset"]["manifest"].endswith("d.npz.manifest.json")
    assert rj["config"]["data"] == str(data.resolve()) and rj["config"]["recording"]["every"] == 1
    assert rj["device"]["type"] == "cpu" and rj["device"]["name"]
    assert "torch" in rj["versions"] and "git_commit" in rj["code"]
    assert read_metadata(out / "spectra.parquet")["run_id"] == res.run_id
    metrics = pd.read_csv(out / "metrics.tsv", sep="\t")
    assert "recon_error" in metrics.columns and (metrics.recon_error > 0).all()
    man = json.loads((out / "manifest.json").read_text())
    assert {Path(r["path"]).name for r in man["inputs"]} == {"d.npz", "d.npz.manifest.json", "run.yaml"}
    assert {Path(r["path"]).name for r in man["outputs"]} == {"spectra.parquet", "metrics.tsv", "model.pt", "run.json"}
    state = torch.load(out / "model.pt", weights_only=True)
    assert state["layers.0.weight"].shape == (16, 20)


def test_same_seed_gives_byte_identical_spectra(tmp_path):
    data = make_dataset(tmp_path / "d.npz", (4, 3), {"kind": "timecourses", "axes": ["s", "time", "c"]}, n=10)
    cfg = config(data, "bert", hidden=(8,), training={"epochs": 3, "batch_size": 4},
                 recording={"subjects": True})  # fmt: skip
    run(tmp_path, cfg, out="a")
    run(tmp_path, cfg, out="b")
    for name in ("spectra.parquet", "subject_spectra.parquet", "model.pt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    cfg["training"]["seed"] = 1
    run(tmp_path, cfg, out="c")
    assert (tmp_path / "a" / "spectra.parquet").read_bytes() != (tmp_path / "c" / "spectra.parquet").read_bytes()


# ---------------------------------------------------------------------------------- real data
def test_real_mnist_digits_are_learned(tmp_path):
    from autospec.data.mnist import mnist_dataset

    save_dataset(tmp_path / "mnist.npz", mnist_dataset(n_per_class=100, seed=0))  # 1000 real digits
    res = run(tmp_path, config(tmp_path / "mnist.npz", "mlp", hidden=(32,), training={"epochs": 30, "lr": 0.01},
                               recording={"every": 10}))  # fmt: skip
    metrics = pd.read_csv(tmp_path / "run" / "metrics.tsv", sep="\t")
    assert res.status == "completed" and metrics.accuracy.iloc[0] < 0.3  # starts near chance (0.1)
    assert metrics.accuracy.iloc[-1] > 0.8 and metrics.loss.iloc[-1] < 0.5 * metrics.loss.iloc[0]
    df = pd.read_parquet(tmp_path / "run" / "spectra.parquet")
    head = df[(df.key == "layers.1.weight") & (df.stat == "grad") & (df.group == -1)]
    assert (head.groupby("step").size() == 10).all()  # min(32, 10) values per step


# ---------------------------------------------------------------------------------- exit codes
def _write_cfg(tmp_path, cfg) -> str:
    p = tmp_path / "run.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return str(p)


@pytest.mark.parametrize("how", ["lr", "input"])
def test_divergence_exits_3_and_keeps_partial_spectra(tmp_path, capsys, how):
    if how == "lr":
        data = make_dataset(tmp_path / "d.npz", (8,), {"kind": "volumes"}, n=12)
        cfg = config(data, training={"lr": 1e30, "epochs": 30})
    else:  # finite float32 inputs whose squared reconstruction error overflows to inf
        data = make_dataset(tmp_path / "d.npz", (8,), {"kind": "volumes"}, n=12, scale=1e37)
        cfg = config(data, task="autoencode", training={"epochs": 30})
    rc = cli_main(["train", "--config", _write_cfg(tmp_path, cfg), "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 3 and len(err) == 1 and err[0].startswith("autospec train: diverged: loss")
    out = tmp_path / "out"
    rj = json.loads((out / "run.json").read_text())
    assert rj["status"] == "diverged" and rj["diverged"]["loss"] in ("nan", "inf")
    e = rj["diverged"]["epoch"]
    df = pd.read_parquet(out / "spectra.parquet")
    assert sorted(df.step.unique()) == list(range(e))  # every epoch before the divergence, none after
    metrics = pd.read_csv(out / "metrics.tsv", sep="\t")
    assert len(metrics) == e + 1 and not np.isfinite(metrics.loss.iloc[-1])
    assert not (out / "model.pt").exists() and not (out / "checkpoint.pt").exists()


def test_bad_config_field_exits_2_with_one_line(tmp_path, capsys):
    data = make_dataset(tmp_path / "d.npz", (8,), {"kind": "volumes"})
    rc = cli_main(["train", "--config", _write_cfg(tmp_path, config(data, training={"lr": -1})),
                   "--out", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert err[0].startswith("autospec train: error: run config field training.lr: -1 is less than the minimum of 0")


def test_missing_dataset_exits_2(tmp_path, capsys):
    rc = cli_main(["train", "--config", _write_cfg(tmp_path, config(tmp_path / "none.npz")),
                   "--out", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "none.npz: dataset file not found" in err[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_requested_without_cuda_exits_2(tmp_path, capsys):
    data = make_dataset(tmp_path / "d.npz", (8,), {"kind": "volumes"})
    rc = cli_main(["train", "--config", _write_cfg(tmp_path, config(data)), "--out", str(tmp_path / "o"),
                   "--device", "cuda"])  # fmt: skip
    assert rc == 2 and "training.device: 'cuda' requested" in capsys.readouterr().err
