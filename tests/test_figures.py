"""Figures from recorded runs: files, sizes, embedded provenance, sidecar content, CLI, atomicity."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from recorded_runs import make_dataset, make_run

import autospec
from autospec.cli import main
from autospec.data.dataset import Dataset, save_dataset
from autospec.errors import InputError
from autospec.figures import brain_maps, layer_triptych, spectra_figure, training_curves
from autospec.figures.spectra_figure import _mask_zeros
from autospec.provenance import embedded_provenance, provenance_id
from autospec.stats import bh_adjust


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    ds = make_dataset(root / "data" / "data.npz", effect=1.0)
    dirs = [make_run(root / f"seed{s}", ds, seed=s, epochs=5) for s in range(2)]
    stats = root / "stats"
    assert (
        main(
            [
                "group-stats",
                "--spectra",
                *[str(d / "spectra.parquet") for d in dirs],
                "--subject-spectra",
                str(dirs[0] / "subject_spectra.parquet"),
                "--out",
                str(stats),
                "--permutations",
                "199",
            ]
        )
        == 0
    )
    return {"root": root, "dirs": dirs, "stats": stats}


def _png_text(p: Path) -> dict:
    with Image.open(p) as im:
        return dict(im.text), im.size


def test_spectra_figure_has_paper_size_embedded_id_and_full_sidecar(study, tmp_path):
    d0, d1 = study["dirs"]
    cfg = tmp_path / "config.yaml"
    cfg.write_text("epochs: 5\n")
    png, pdf = tmp_path / "fig.png", tmp_path / "fig.pdf"
    side = spectra_figure(
        {"A": d0, "B": d1, "C": tmp_path / "absent", "D": None, "G": [d0, d1]},
        study["stats"],
        png,
        pdf,
        provenance={"rule": "figure_spectra", "wildcards": {"dataset": "toy"}, "params": {"x": 1}, "config": cfg},
    )
    assert side == tmp_path / "fig.prov.json"
    text, size = _png_text(png)
    data = json.loads(side.read_text())
    pid = data["provenance_id"]
    assert text["autospec:provenance"] == pid and text["autospec:sidecar"] == "fig.prov.json"
    assert text["Software"].startswith("autospec")
    assert size[0] == 1400  # 7 in at 200 dpi
    assert embedded_provenance(pdf)["id"] == pid
    assert re.search(rb"/Subject \(autospec figure, provenance " + pid.encode(), pdf.read_bytes())
    assert provenance_id(data) == pid
    assert data["rule"] == "figure_spectra" and data["wildcards"] == {"dataset": "toy"}
    assert data["params"]["x"] == 1 and set(data["params"]["panels"]) == {"A", "B", "G"}  # C, D skipped
    assert data["config"]["sha256"] == __import__("hashlib").sha256(b"epochs: 5\n").hexdigest()
    assert data["code"]["package_version"] and "git_commit" in data["code"]
    assert data["software"]["matplotlib"] and data["host"]["hostname"] and data["device"]
    ins = {Path(i["path"]).name: i for i in data["inputs"]}
    assert ins["spectra.parquet"]["manifest"]["path"].endswith("manifest.json")
    # the default is the recommended test; these runs classify the groups, so it is not valid
    # inference here: the panel is drawn from its table but nothing is marked, and the caption says why
    assert "subject_maxt_tests.parquet" in ins and data["params"]["marking_test"] == {"G": "subject_maxt_tests"}
    assert data["params"]["n_marked"] == 0 and "trained to classify" in data["params"]["panel_notes"]["G"]
    outs = {Path(o["path"]).suffix for o in data["outputs"]}
    assert outs == {".png", ".pdf"}
    # named explicitly (as the default study's figures.test does), the recommended test still marks nothing here
    named = spectra_figure({"G": [d0, d1]}, study["stats"], tmp_path / "named.png", None, test="subject_maxt_tests")
    notes = json.loads(named.read_text())["params"]
    assert notes["n_marked"] == 0 and "trained to classify" in notes["panel_notes"]["G"]


def test_numerically_zero_singular_values_are_blank():
    z = np.array([[1.0, 2.0], [1e-9, 0.5], [0.0, np.nan]])
    m = _mask_zeros(z)
    assert m[0, 0] == 1.0 and m[1, 1] == 0.5 and np.isnan(m[1, 0]) and np.isnan(m[2]).all()


def test_spectra_figure_without_any_run_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="none of the panels"):
        spectra_figure({"A": tmp_path / "nope"}, None, tmp_path / "f.png", None)
    assert list(tmp_path.iterdir()) == []


def test_triptych_and_curves(study, tmp_path):
    d0, d1 = study["dirs"]
    side = layer_triptych(d0, "layers.0.weight", tmp_path / "t.png", tmp_path / "t.pdf", group=1)
    data = json.loads(side.read_text())
    assert data["figure"]["kind"] == "triptych" and data["params"]["group"] == 1
    assert _png_text(tmp_path / "t.png")[0]["autospec:provenance"] == data["provenance_id"]
    with pytest.raises(InputError, match="no weight 'nope'"):
        layer_triptych(d0, "nope", tmp_path / "x.png", None)
    side = training_curves({"s0": d0, "s1": d1}, tmp_path / "c.png", None)
    data = json.loads(side.read_text())
    assert [Path(i["path"]).name for i in data["inputs"]] == ["metrics.tsv", "metrics.tsv"]
    with pytest.raises(InputError, match="metrics file not found"):
        training_curves([tmp_path], tmp_path / "y.png", None)
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.png").exists()


def _mni_map(path: Path, bump: float, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    aff = np.diag([8.0, 8.0, 8.0, 1.0])
    aff[:3, 3] = [-90, -126, -72]
    data = np.abs(rng.normal(size=(23, 27, 23))).astype(np.float32)
    data[8:14, 10:16, 8:14] += bump
    nib.save(nib.Nifti1Image(data, aff), path)
    return path


def test_brain_maps_from_group_niftis_and_from_a_dataset(tmp_path):
    hc, sz = _mni_map(tmp_path / "hc.nii.gz", 0.0, 0), _mni_map(tmp_path / "sz.nii.gz", 2.0, 1)
    side = brain_maps({"HC": hc, "SZ": sz}, tmp_path / "b.png", tmp_path / "b.pdf")
    data = json.loads(side.read_text())
    assert data["params"]["groups"] == ["HC", "SZ"] and len(data["inputs"]) == 2
    assert _png_text(tmp_path / "b.png")[0]["autospec:provenance"] == data["provenance_id"]
    # a prepared spatial-maps dataset: per-group means are computed from it
    X = np.stack([np.asarray(nib.load(hc).dataobj)] * 3 + [np.asarray(nib.load(sz).dataobj)] * 3)
    ds = Dataset(
        X=X,
        y=[0, 0, 0, 1, 1, 1],
        groups=[0, 0, 0, 1, 1, 1],
        subject_ids=[f"s{i}" for i in range(6)],
        class_names=["HC", "SZ"],
        group_names=["HC", "SZ"],
        meta={"affine": nib.load(hc).affine.tolist()},
    )
    save_dataset(tmp_path / "maps.npz", ds)
    side = brain_maps(tmp_path / "maps.npz", tmp_path / "d.png", None, sidecar_path=tmp_path / "d.json")
    assert json.loads(side.read_text())["params"]["groups"] == ["HC", "SZ"]
    four = tmp_path / "four.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.float32), np.eye(4)), four)
    with pytest.raises(InputError, match="expected a 3-D map"):
        brain_maps({"HC": four}, tmp_path / "e.png", None)


def test_plot_command_with_custom_sidecar_path(study, tmp_path, capsys, monkeypatch):
    d0, d1 = study["dirs"]
    png, side = tmp_path / "figs" / "s.png", tmp_path / "prov" / "s.json"
    argv = [
        "plot",
        "--kind",
        "spectra",
        "--panel",
        f"A={d0}",
        "--panel",
        f"G={d0}:{d1}",
        "--stats",
        str(study["stats"]),
        "--test",
        "subject_tests",
        "--summary",
        "log_sigma1",
        "--out-png",
        str(png),
        "--provenance-json",
        str(side),
        "--rule",
        "fig",
        "--wildcards",
        "model=mlp,data=toy",
        "--params",
        "alpha=0.05",
    ]
    # as `python -m autospec plot ...` sees it
    monkeypatch.setattr(sys, "argv", [str(Path(autospec.__file__).with_name("__main__.py")), *argv])
    assert main(argv) == 0
    data = json.loads(side.read_text())
    assert data["wildcards"] == {"model": "mlp", "data": "toy"} and data["params"]["alpha"] == "0.05"
    assert shlex.split(data["command"]) == [sys.executable, "-m", "autospec", *argv]
    assert data["params"]["marking_test"] == {"G": "subject_tests"}
    assert "not valid inference here" in data["params"]["panel_notes"]["G"]  # asked for explicitly: labelled
    # marks: BH over exactly the tests this figure shows (one panel G: both weights, all epochs)
    t = pd.read_parquet(study["stats"] / "subject_tests.parquet")
    t = t[(t.stat == "grad") & (t.summary == "log_sigma1")]
    p_col = "p_perm"
    assert data["params"]["n_tests"] == len(t)
    assert data["params"]["n_marked"] == int((bh_adjust(t[p_col].to_numpy()) <= 0.05).sum()) >= 1
    assert _png_text(png)[0]["autospec:sidecar"] == "../prov/s.json"
    assert main(["audit", "-q", str(png)]) == 0
    assert main(["plot", "--kind", "curves", "--out-png", str(tmp_path / "c.png")]) == 2
    assert "needs at least one --run" in capsys.readouterr().err


def test_a_failed_figure_write_leaves_nothing(study, tmp_path):
    with pytest.raises(ValueError, match=r"\.png or \.pdf"):
        training_curves([study["dirs"][0]], tmp_path / "c.png", tmp_path / "c.svg")
    assert list(tmp_path.iterdir()) == []


def test_difference_panel_marks_the_recommended_test_on_its_own_quantity(tmp_path):
    from autospec.stats import caption

    ds = make_dataset(tmp_path / "d" / "data.npz", n=(16, 16), effect=1.0, kind="volumes")
    dirs = [make_run(tmp_path / f"ae{s}", ds, seed=s, epochs=4, task="autoencode") for s in range(2)]
    stats = tmp_path / "stats"
    argv = ["group-stats", "--spectra", *[str(d / "spectra.parquet") for d in dirs], "--subject-spectra"]
    assert main([*argv, str(dirs[0] / "subject_spectra.parquet"), "--out", str(stats), "--permutations", "199"]) == 0
    side = spectra_figure({"A": dirs[0], "G": dirs}, stats, tmp_path / "f.png", None)
    data = json.loads(side.read_text())
    assert data["params"]["marking_test"] == {"G": "subject_maxt_tests"}
    # the caption line is the measured calibration of this test on this data x model x task
    assert data["params"]["panel_notes"]["G"] == caption("subject_maxt", "volumes", "mlp", "autoencode", effect=1.0)
    t = pd.read_parquet(stats / "subject_maxt_tests.parquet")
    t = t[t.summary == "log_nuclear"]
    assert data["params"]["n_marked"] == int((t["p_fwer"] <= 0.05).sum()) >= 1  # FWER-adjusted, one panel
    assert data["params"]["n_tests"] == int(t["p_fwer"].notna().sum())
    with pytest.raises(InputError, match="unknown marking test"):
        spectra_figure({"G": dirs}, stats, tmp_path / "g.png", None, test="seed_permutation")
    notes = {}
    for test in ("paper_step_tests", "seed_tests"):
        side = spectra_figure({"G": dirs}, stats, tmp_path / f"{test}.png", None, test=test)
        notes[test] = json.loads(side.read_text())["params"]["panel_notes"]["G"]
    assert notes["paper_step_tests"].endswith("[paper's test, not valid inference]")
    assert notes["seed_tests"].endswith("[not valid inference: seeds are not subjects]")
