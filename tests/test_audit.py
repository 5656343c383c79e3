"""``autospec audit``: a raw file -> manifest -> intermediate -> figure chain, and what breaks it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
    rc, _out, err = _audit_cli(chain["fig"], capsys)
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
    rc, _out, err = _audit_cli(chain["fig"], capsys)
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
        check=False,
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
        check=False,
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


# ------------------------------------------------------------------ damage of any kind, anywhere
DAMAGE = {
    "flip a byte": lambda p, k: p.write_bytes(_flipped(p.read_bytes(), k)),
    "truncate": lambda p, k: p.write_bytes(p.read_bytes()[: k % max(1, p.stat().st_size)]),
    "append": lambda p, k: p.write_bytes(p.read_bytes() + b"\n0"),
    "empty": lambda p, k: p.write_bytes(b""),
    "JSON list": lambda p, k: p.write_text("[]"),
    "JSON null": lambda p, k: p.write_text("null"),
    "JSON of the wrong shape": lambda p, k: p.write_text('{"inputs": "x", "outputs": 1, "provenance_id": []}'),
    "not UTF-8": lambda p, k: p.write_bytes(b"\xff\xfe\xe9" * 5),
    "deleted": lambda p, k: p.unlink(),
    "a directory instead": lambda p, k: (p.unlink(), p.mkdir()),
}


def _flipped(data: bytes, k: int) -> bytes:
    b = bytearray(data)
    if b:
        b[k % len(b)] ^= 0x01
    return bytes(b)


@pytest.fixture(scope="module")
def clean_chain(tmp_path_factory):
    """The chain of the `chain` fixture, built once; its lineage as a clean audit lists it."""
    from hostile_cases import figure_chain

    root = figure_chain(tmp_path_factory.mktemp("damage") / "x", copy=False)
    rep = audit(root / "figs" / "spectra.png", roots=[root])
    assert rep.ok, rep.problems
    os.chdir(root)
    try:
        lineage = sorted(
            {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and audit_names(rep, p, root)}
        )
    finally:
        os.chdir(REPO_ROOT)
    return root, ["figs/spectra.png", "figs/spectra.prov.json", *[f for f in lineage if not f.startswith("figs/")]]


def audit_names(rep, p: Path, root: Path) -> bool:
    rel = str(p.relative_to(root))
    return any(rel in line for line in rep.lines)


REPO_ROOT = Path(__file__).resolve().parents[1]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_damage_anywhere_in_the_lineage_fails_naming_the_file(clean_chain, data, tmp_path):
    """Damaged in place and restored after each example: the sidecar and manifests record absolute
    paths too, so a copy of the chain would be audited against the original."""
    root, lineage = clean_chain
    target = data.draw(st.sampled_from(lineage), label="file")
    how = data.draw(st.sampled_from(sorted(DAMAGE)), label="damage")
    k = data.draw(st.integers(min_value=0, max_value=10**6), label="position")
    path, backup = root / target, tmp_path / "backup"
    shutil.copy2(path, backup)
    cwd = os.getcwd()
    try:
        DAMAGE[how](path, k)
        if path.is_file() and path.read_bytes() == backup.read_bytes():
            return  # e.g. truncating at the file's own length: no damage done
        os.chdir(root)
        rc, out, err = _audit_cli_plain(Path("figs/spectra.png"))
    finally:
        os.chdir(cwd)
        if path.is_dir():
            path.rmdir()
        shutil.copy2(backup, path)
    assert rc == 1, f"{how} of {target}: audit said ok\n{out}"
    first = err.splitlines()[0]
    assert first.startswith("audit FAILED: ") and "Traceback" not in err + out, err
    assert target in first or Path(target).name in first, f"{how} of {target}: {first}"


def _audit_cli_plain(path: Path):
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["audit", str(path)])
    return rc, out.getvalue(), err.getvalue()


def test_a_deleted_cohort_manifest_is_missing_not_ok(tmp_path):
    """The issue's repro: a generated cohort -> preprocess -> train -> figure, all by the CLI; delete
    the cohort's manifest and the audit fails naming it (it used to report ok on the shorter lineage)."""
    from hostile_cases import cohort_chain

    root = cohort_chain(tmp_path / "x")
    fig = root / "figs" / "curves.png"
    assert audit(fig).ok
    (root / "cohorts/c/manifest.json").rename(tmp_path / "moved.json")
    try:
        rep = audit(fig)
        assert not rep.ok and rep.first_problem.startswith(f"missing: {root}/cohorts/c/manifest.json (manifest of ")
    finally:
        (tmp_path / "moved.json").rename(root / "cohorts/c/manifest.json")
