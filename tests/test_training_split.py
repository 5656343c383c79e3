"""Held-out subjects (split:), standardisation fitted on the training subjects, matched group
sampling and the covariate columns of subjects.tsv — each checked against an independent oracle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from autospec.data.dataset import Dataset, save_dataset
from autospec.errors import InputError
from autospec.models import build_model
from autospec.training import load_run_config, train
from autospec.training.config import SplitSettings
from autospec.training.split import held_out

N_HC, N_SZ, D = 10, 30, 6


def cohort(seed=0, standardize="features", n_hc=N_HC, n_sz=N_SZ) -> Dataset:
    """Unbalanced groups, two classes, features far from mean 0 / sd 1 (so standardising matters)."""
    rng = np.random.default_rng(seed)
    n = n_hc + n_sz
    meta = {"kind": "volumes", **({"standardize": standardize} if standardize else {})}
    return Dataset(
        X=(rng.normal(size=(n, D)) * np.arange(1, D + 1) + 50).astype(np.float32),
        y=rng.permutation(np.arange(n) % 2),
        groups=np.repeat([0, 1], [n_hc, n_sz]),
        subject_ids=[f"sub-{i:02d}" for i in range(n)],
        class_names=["neg", "pos"],
        group_names=["HC", "SZ"],
        meta=meta,
    )


def config(data: Path, **sections) -> dict:
    cfg = {
        "data": str(data),
        "model": {"family": "mlp", "hidden": [8]},
        "training": {"epochs": 3, "lr": 0.01, "checkpoint_every": 0, "device": "cpu"},
    }
    for name, values in sections.items():
        if isinstance(values, dict) and isinstance(cfg.get(name), dict):
            cfg[name].update(values)
        else:
            cfg[name] = values
    return cfg


def run(tmp_path, cfg, out="run"):
    return train(load_run_config(cfg), tmp_path / out, progress=False)


def standardized(X: np.ndarray, fit: np.ndarray) -> np.ndarray:
    flat = X.reshape(len(X), -1).astype(np.float64)
    return ((flat - flat[fit].mean(0)) / flat[fit].std(0)).astype(np.float32).reshape(X.shape)


# ---------------------------------------------------------------------------------- the split itself
def _strata_counts(ds: Dataset, mask: np.ndarray) -> dict:
    return {(g, y): int(((ds.groups == g) & (ds.y == y) & mask).sum()) for g in (0, 1) for y in (0, 1)}


def test_holdout_is_stratified_and_set_by_its_own_seed():
    ds = cohort()
    mask = held_out(ds.groups, ds.y, SplitSettings("holdout", fraction=0.3))
    assert mask.sum() == 12  # round(0.3 * 40)
    sizes = _strata_counts(ds, np.ones(len(mask), bool))
    for key, k in _strata_counts(ds, mask).items():
        assert abs(k - 0.3 * sizes[key]) < 1, key  # every stratum keeps its share
    again = held_out(ds.groups, ds.y, SplitSettings("holdout", fraction=0.3))
    other = held_out(ds.groups, ds.y, SplitSettings("holdout", fraction=0.3, seed=1))
    assert np.array_equal(mask, again) and not np.array_equal(mask, other)


def test_kfold_folds_partition_the_subjects_stratified():
    ds = cohort()
    masks = [held_out(ds.groups, ds.y, SplitSettings("kfold", k=4, fold=i)) for i in range(4)]
    assert (np.sum(masks, axis=0) == 1).all()  # every subject held out exactly once
    sizes = _strata_counts(ds, np.ones(len(ds.y), bool))
    for m in masks:
        assert m.sum() == 10
        for key, k in _strata_counts(ds, m).items():
            assert sizes[key] // 4 <= k <= -(-sizes[key] // 4), key


def test_a_split_that_empties_a_group_is_refused():
    groups, y = np.array([0, 1, 1, 1, 1, 1]), np.zeros(6, int)
    with pytest.raises(InputError, match="every sample of group 'A' is held out"):
        held_out(groups, y, SplitSettings("kfold", k=2, fold=0), ["A", "B"])
    with pytest.raises(InputError, match=r"split\.kfold: 7 folds but only 6 samples"):
        held_out(groups, y, SplitSettings("kfold", k=7, fold=0))


def test_split_config_errors_name_the_field():
    base = {"data": "x.npz", "model": {"family": "mlp"}}
    for split, msg in [
        ({"holdout": 1.0}, r"split\.holdout: 1\.0 is greater than or equal to the maximum"),
        ({"kfold": 3, "fold": 3}, r"split\.fold: 3 is not below kfold=3"),
        ({"holdout": 0.2, "kfold": 3, "fold": 0}, "give either holdout"),
        ({"kfold": 3}, "kfold needs both"),
    ]:
        with pytest.raises(InputError, match=msg):
            load_run_config({**base, "split": split})
    with pytest.raises(InputError, match=r"recording\.group_sampling: 'matched'"):
        load_run_config({**base, "recording": {"groups": False, "group_sampling": "matched"}})


# ---------------------------------------------------------------------------------- runs
@pytest.mark.parametrize("split", ["none", {"holdout": 0.25, "seed": 3}])
def test_spectra_are_of_the_training_subjects_standardised_on_them(tmp_path, split):
    ds = cohort()
    save_dataset(tmp_path / "d.npz", ds)
    run(tmp_path, config(tmp_path / "d.npz", split=split, recording={"subjects": True, "stats": ["act"]}))
    out = tmp_path / "run"
    test = held_out(ds.groups, ds.y, load_run_config(config("x", split=split)).settings.split)
    X = standardized(ds.X, ~test)
    # oracle: layer 0's A is the input itself, so σ(A) of the whole batch is σ(X_train)
    df = pd.read_parquet(out / "spectra.parquet")
    got = df[(df.key == "layers.0.weight") & (df.group == -1) & (df.step == 0)].sort_values("index").value
    np.testing.assert_allclose(got, np.linalg.svd(X[~test].astype(np.float64), compute_uv=False), rtol=1e-5)
    for g in (0, 1):
        got = df[(df.key == "layers.0.weight") & (df.group == g) & (df.step == 0)].sort_values("index").value
        rows = X[~test & (ds.groups == g)].astype(np.float64)
        np.testing.assert_allclose(got, np.linalg.svd(rows, compute_uv=False)[: len(got)], rtol=1e-5)
    subjects = pd.read_csv(out / "subjects.tsv", sep="\t")
    assert subjects.split.tolist() == np.where(test, "test", "train").tolist()
    recorded = set(pd.read_parquet(out / "subject_spectra.parquet").group) - {-1}
    assert recorded == set(np.flatnonzero(~test).tolist())  # held-out subjects are never recorded
    rj = json.loads((out / "run.json").read_text())
    assert rj["group_sizes"] == np.bincount(ds.groups[~test]).tolist()
    assert rj["dataset"]["standardization"]["n_fitted"] == int((~test).sum())
    assert rj["split"]["held_out_subjects"] == ds.subject_ids[test].tolist()


def test_held_out_loss_is_the_model_of_that_epoch_on_the_held_out_subjects(tmp_path):
    ds = cohort()
    save_dataset(tmp_path / "d.npz", ds)
    split = {"holdout": 0.25}
    for epochs in (3, 4):  # same seed: the 3-epoch model is the 4-epoch run's model at the start of epoch 3
        run(tmp_path, config(tmp_path / "d.npz", split=split, training={"epochs": epochs}), out=f"e{epochs}")
    metrics = pd.read_csv(tmp_path / "e4" / "metrics.tsv", sep="\t")
    assert list(metrics.columns) == ["epoch", "loss", "accuracy", "wall_s", "recorded", "test_loss", "test_accuracy"]
    test = held_out(ds.groups, ds.y, SplitSettings("holdout", fraction=0.25))
    X = torch.from_numpy(standardized(ds.X, ~test)[test])
    model = build_model("mlp", "classify", (D,), 2, hidden=[8], activation="relu")
    model.load_state_dict(torch.load(tmp_path / "e3" / "model.pt", weights_only=True))
    with torch.no_grad():
        out = model(X)
    y = torch.from_numpy(ds.y[test])
    assert metrics.test_loss[3] == pytest.approx(float(F.cross_entropy(out, y)), rel=1e-6)
    assert metrics.test_accuracy[3] == pytest.approx(float((out.argmax(1) == y).float().mean()))
    assert metrics.test_loss[0] != metrics.loss[0]  # a different set of subjects


def test_matched_sampling_records_equal_subsets_shared_by_training_seeds(tmp_path):
    ds = cohort()
    save_dataset(tmp_path / "d.npz", ds)
    rec = {"group_sampling": "matched", "sampling_seed": 7}
    for seed in (0, 1):
        run(
            tmp_path,
            config(tmp_path / "d.npz", split={"holdout": 0.25}, recording=rec, training={"seed": seed}),
            out=f"s{seed}",
        )
    test = held_out(ds.groups, ds.y, SplitSettings("holdout", fraction=0.25))
    X = standardized(ds.X, ~test).astype(np.float64)
    m = int(np.bincount(ds.groups[~test]).min())
    draws = [json.loads((tmp_path / f"s{s}" / "run.json").read_text())["group_sampling"]["draws"] for s in (0, 1)]
    assert draws[0] == draws[1] and [d["step"] for d in draws[0]] == [0, 1, 2]
    assert draws[0][0]["rows"] != draws[0][1]["rows"]  # a new draw at every step
    df = pd.read_parquet(tmp_path / "s0" / "spectra.parquet")
    assert set(df.group) == {-1, 0, 1}  # the "not sampled" group is never written
    torch.manual_seed(0)  # the run's initial weights, for the gradient oracle at step 0
    model = build_model("mlp", "classify", (D,), 2, hidden=[8], activation="relu").double()
    for d in draws[0]:
        for g, name in enumerate(ds.group_names):
            rows = np.array(d["rows"][name])
            assert len(rows) == d["size"] == m and not test[rows].any() and (ds.groups[rows] == g).all()
            sel = df[(df.step == d["step"]) & (df.group == g) & (df.key == "layers.0.weight")]
            act = sel[sel.stat == "act"].sort_values("index").value
            np.testing.assert_allclose(act, np.linalg.svd(X[rows], compute_uv=False), rtol=1e-5)
            if d["step"] == 0:  # G_g = ∂(Σ_{i in subset} ℓ_i / N_train)/∂W, with W at initialisation
                model.zero_grad()
                losses = F.cross_entropy(
                    model(torch.from_numpy(X[rows])), torch.from_numpy(ds.y[rows]), reduction="none"
                )
                (losses.sum() / (~test).sum()).backward()
                want = np.linalg.svd(model.layers[0].weight.grad.numpy(), compute_uv=False)
                grad = sel[sel.stat == "grad"].sort_values("index").value.to_numpy()
                np.testing.assert_allclose(grad, want[: len(grad)], rtol=1e-4, atol=1e-7 * want[0])


def test_subjects_tsv_carries_the_covariates(tmp_path):
    ds = cohort(standardize=None)
    ds.covariates = {"age": np.linspace(20, 60, ds.n), "site": np.array(["A", "B"] * (ds.n // 2))}
    save_dataset(tmp_path / "d.npz", ds)  # the covariates go through the file, as preprocess writes them
    run(tmp_path, config(tmp_path / "d.npz", recording={"subjects": True}))
    subjects = pd.read_csv(tmp_path / "run" / "subjects.tsv", sep="\t")
    assert list(subjects.columns) == ["index", "subject_id", "group", "class", "split", "age", "site"]
    np.testing.assert_allclose(subjects.age, ds.covariates["age"])
    assert subjects.site.tolist() == ds.covariates["site"].tolist()
    ds.covariates = {"group": np.zeros(ds.n)}
    save_dataset(tmp_path / "clash.npz", ds)
    with pytest.raises(InputError, match="dataset covariate 'group': clashes"):
        run(tmp_path, config(tmp_path / "clash.npz", recording={"subjects": True}), out="bad")
    assert not (tmp_path / "bad").exists()


def test_curves_figure_draws_the_held_out_curves(tmp_path, monkeypatch):
    import importlib

    from autospec.figures import training_curves

    fig_module = importlib.import_module("autospec.figures.spectra_figure")  # the package shadows it

    ds = cohort()
    save_dataset(tmp_path / "d.npz", ds)
    run(tmp_path, config(tmp_path / "d.npz", split={"holdout": 0.25}), out="held")
    run(tmp_path, config(tmp_path / "d.npz"), out="plain")
    drawn = []
    save = fig_module.save_figure
    monkeypatch.setattr(fig_module, "save_figure", lambda fig, *a, **k: (drawn.append(fig), save(fig, *a, **k))[1])
    training_curves({"held": tmp_path / "held", "plain": tmp_path / "plain"}, tmp_path / "c.png", None)
    loss_ax, acc_ax = drawn[0].axes[:2]
    metrics = pd.read_csv(tmp_path / "held" / "metrics.tsv", sep="\t")
    dashed = [ln for ln in loss_ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(loss_ax.get_lines()) == 3 and len(dashed) == 1  # held: train + held out; plain: train
    np.testing.assert_allclose(dashed[0].get_ydata(), metrics.test_loss)
    acc_dashed = [ln for ln in acc_ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(acc_dashed) == 1
    np.testing.assert_allclose(acc_dashed[0].get_ydata(), metrics.test_accuracy)
    assert "held out" in loss_ax.get_ylabel()
