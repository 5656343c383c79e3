"""``autospec audit``: a raw file -> manifest -> intermediate -> figure chain, and what breaks it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from recorded_runs import make_dataset, make_run

from autospec.cli import main
from autospec.figures import spectra_figure, training_curves
from autospec.provenance import audit, embedded_provenance, write_dataset_description


@pytest.fixture()
def chain(tmp_path, monkeypatch):
    """raw_features.csv -> data.npz (+manifest) -> run (+manifest) -> group-stats (+manifest) -> figure.

    Built as a workflow would: from the project directory, with relative paths everywhere.
    """
    monkeypatch.chdir(tmp_path)
    ds = make_dataset(Path("data") / "data.npz", effect=0.5)
    runs = [make_run(Path(f"run{s}"), ds, seed=s, epochs=3, subjects=False) for s in range(2)]
    assert (
        main(
            [
                "group-stats",
                "--spectra",
                *[str(r / "spectra.parquet") for r in runs],
                "--out",
                "stats",
                "--permutations",
                "0",
            ]
        )
        == 0
    )
    fig = Path("figs") / "spectra.png"
    # seed tests mark the epochs (the default, the subject-level test, needs per-subject spectra)
    spectra_figure(
        {"A": runs[0], "G": runs}, "stats", fig, fig.with_suffix(".pdf"), test="seed_tests", provenance={"rule": "fig"}
    )
    return {
        "root": tmp_path,
        "raw": Path("data") / "raw_features.csv",
        "runs": [tmp_path / r for r in runs],
        "stats": tmp_path / "stats",
        "fig": tmp_path / fig,
    }


def _audit_cli(path, capsys, *extra):
    rc = main(["audit", str(path), *extra])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_a_clean_chain_audits_clean_back_to_the_raw_file(chain, capsys):
    rc, out, err = _audit_cli(chain["fig"], capsys)
    assert rc == 0, err
    assert "audit ok" in out and err == ""
    lines = out.splitlines()
    raw = [ln for ln in lines if ln.strip().startswith(str(chain["raw"]) + " ")]
    assert raw and raw[0].startswith("  " * 6)  # figure > sidecar > input > manifest > npz > manifest > raw
    assert any("manifest" in ln and "group-stats" in ln for ln in lines)
    assert any("(step preprocess" in ln for ln in lines)
    assert audit(chain["fig"].with_suffix(".pdf")).ok  # the PDF carries the same provenance


def test_the_png_text_chunk_and_pdf_keywords_hold_the_sidecar_id(chain):
    side = json.loads(chain["fig"].with_suffix(".prov.json").read_text())
    with Image.open(chain["fig"]) as im:
        assert im.text["autospec:provenance"] == side["provenance_id"]
    assert embedded_provenance(chain["fig"].with_suffix(".pdf"))["id"] == side["provenance_id"]


def test_a_changed_raw_file_fails_and_is_named(chain, capsys):
    with open(chain["raw"], "a") as fh:
        fh.write("0,0,0\n")
    rc, out, err = _audit_cli(chain["fig"], capsys)
    assert rc == 1
    first = err.splitlines()[0]
    assert first.startswith("audit FAILED: changed: ") and str(chain["raw"]) in first
    assert "expected sha256" in first and "data.npz.manifest.json" in first


def test_a_changed_intermediate_is_named_first(chain, capsys):
    t = chain["stats"] / "seed_tests.parquet"
    t.write_bytes(t.read_bytes() + b"\0")
    rep = audit(chain["fig"])
    assert not rep.ok and rep.first_problem.startswith("changed: ") and "seed_tests.parquet" in rep.first_problem
    # an intermediate that the figure did not read directly: a run's spectra, via the stats manifest
    # and the figure sidecar (first in walk order: the sidecar's own reference)
    s = chain["runs"][1] / "spectra.parquet"
    s.write_bytes(s.read_bytes()[:-1] + b"x")
    rc, _, err = _audit_cli(chain["fig"], capsys)
    assert rc == 1 and "run1/spectra.parquet" in err.splitlines()[0]


def test_a_deleted_file_is_named_as_missing(chain, capsys):
    chain["raw"].unlink()
    rc, out, err = _audit_cli(chain["fig"], capsys)
    assert rc == 1
    assert err.splitlines()[0].startswith(f"audit FAILED: missing: {chain['raw']}")
    shutil.rmtree(chain["runs"][0])
    os.chdir(chain["root"].parent)  # and from elsewhere: the sidecar's absolute paths are used
    rep = audit(chain["fig"])
    assert rep.first_problem.startswith("missing: run0/spectra.parquet")


def test_a_tampered_sidecar_or_swapped_figure_fails(chain, tmp_path):
    side = chain["fig"].with_suffix(".prov.json")
    data = json.loads(side.read_text())
    data["params"]["alpha"] = 0.5
    side.write_text(json.dumps(data))
    rep = audit(chain["fig"])
    assert "no longer hashes to its provenance ID" in rep.first_problem
    # another figure's PNG under this name: its embedded ID differs from this sidecar's
    other = tmp_path / "other.png"
    training_curves([chain["runs"][0]], other, None)
    side.write_text(json.dumps(dict(data, params=dict(data["params"], alpha=0.05))))
    shutil.copy(other, chain["fig"])
    rep = audit(chain["fig"], sidecar=side)
    assert not rep.ok and any("embedded provenance ID" in p for p in rep.problems)
    assert any(p.startswith("changed: ") and "spectra.png" in p for p in rep.problems)


def test_a_non_figure_output_audits_through_its_manifest(chain, capsys):
    rc, out, _ = _audit_cli(chain["stats"] / "seed_tests.tsv", capsys)
    assert rc == 0 and "(step group-stats)" in out and str(chain["raw"]) in out
    lone = chain["root"] / "lone.txt"
    lone.write_text("x")
    rc, _, err = _audit_cli(lone, capsys)
    assert rc == 1 and "no provenance" in err
    rc, _, err = _audit_cli(chain["root"] / "absent.png", capsys)
    assert rc == 1 and "missing: " in err


def test_audit_runs_as_a_real_command_from_another_directory(chain):
    # the manifests hold paths relative to the project directory; audit from figs/ still finds them
    man = json.loads((chain["root"] / "data" / "data.npz.manifest.json").read_text())
    assert man["inputs"][0]["path"] == "data/raw_features.csv"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    proc = subprocess.run(
        [sys.executable, "-m", "autospec", "audit", "-q", str(chain["fig"])],
        capture_output=True,
        text=True,
        cwd=chain["root"] / "figs",
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    (chain["root"] / chain["raw"]).write_text("tampered\n")
    proc = subprocess.run(
        [sys.executable, "-m", "autospec", "audit", "-q", str(chain["fig"])],
        capture_output=True,
        text=True,
        cwd=chain["root"] / "figs",
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1 and str(chain["raw"]) in proc.stderr


def test_dataset_description_is_bids_derivative_style(tmp_path):
    p = write_dataset_description(tmp_path / "results")
    d = json.loads(p.read_text())
    assert p.name == "dataset_description.json"
    assert d["DatasetType"] == "derivative" and d["BIDSVersion"] and d["Name"]
    gen = d["GeneratedBy"][0]
    assert gen["Name"] == "autospec" and gen["Version"] and "CodeURL" in gen and "Commit" in gen
