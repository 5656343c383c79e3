"""Property-based fuzzing of every data input: phenotype CSV/TSV, aseg.stats, asegstats2table,
GIFT subject lists, NIfTI headers and parameter MAT-files, cohort configs.

Property: the reader (or ``autospec preprocess``) returns normally, or raises InputError / exits
2 with ONE line and leaves no output behind; never a traceback. Bounded: each test has a small
``max_examples`` (the whole file takes well under a minute on 2 cores).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from cohort_files import IDS, TR, func_header, real_aseg, run_cli, write_cohort
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autospec.data import gift
from autospec.data.cohort import load_cohort_config
from autospec.data.demo.gift_output import timecourse_image
from autospec.data.demo.matfile_writer import CharMatrix, StructArray, save_mat
from autospec.data.freesurfer import read_aseg_stats, read_asegstats2table
from autospec.data.gift_run import read_gift_run, read_subject_list
from autospec.data.matfile import load_mat
from autospec.data.phenotype import read_phenotype
from autospec.errors import InputError

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
    derandomize=os.environ.get("AUTOSPEC_FUZZ_RANDOM") is None,  # reproducible in CI
)
CELLS = st.sampled_from(
    ["", "A1", "A2", "Disenrolled", "Patient", "Control", "n/a", '"q,uote"', "  ", "295.30", "x\ty", "é", "\ufeff"]
)


def _ok_or_one_line(fn):
    try:
        return fn()
    except InputError as err:
        assert "\n" not in str(err) and str(err), repr(str(err))
        return None


def _table(rows, sep):
    return "\n".join(sep.join(r) for r in rows) + "\n"


@FUZZ
@given(
    rows=st.lists(st.lists(CELLS, min_size=1, max_size=5), min_size=0, max_size=6),
    fmt=st.sampled_from(["cobre", "bids"]),
    crlf=st.booleans(),
    bom=st.booleans(),
)
def test_phenotype_tables(rows, fmt, crlf, bom):
    text = _table(rows, "," if fmt == "cobre" else "\t")
    text = ("\ufeff" if bom else "") + (text.replace("\n", "\r\n") if crlf else text)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "p.csv"
        p.write_text(text, encoding="utf-8")
        _ok_or_one_line(lambda: read_phenotype(p, fmt))


@FUZZ
@given(data=st.data())
def test_aseg_stats_mutations(shared_data, data):
    lines = real_aseg(shared_data).read_text().splitlines()
    n = len(lines)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, n - 1))
        op = data.draw(st.sampled_from(["drop", "dup", "garble", "field"]))
        if op == "drop":
            lines[i] = ""
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "garble":
            lines[i] = data.draw(st.text(alphabet="# ,.-0123456789eEnaNfiMsureColHd\t", max_size=40))
        else:
            parts = lines[i].split()
            if parts:
                parts[data.draw(st.integers(0, len(parts) - 1))] = data.draw(st.sampled_from(["nan", "-1", "x", ""]))
                lines[i] = " ".join(parts)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "aseg.stats"
        p.write_text("\n".join(lines) + "\n")
        _ok_or_one_line(lambda: read_aseg_stats(p))


@FUZZ
@given(
    header=st.lists(st.sampled_from(["Measure:volume", "Left-Hippocampus", "eTIV", "", "A", "A"]), max_size=4),
    rows=st.lists(st.lists(st.sampled_from(["s1", "s2", "1.5", "nan", "", "abc", "1e3"]), max_size=4), max_size=4),
    sep=st.sampled_from(["\t", ","]),
)
def test_asegstats2table_tables(header, rows, sep):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "t.txt"
        p.write_text(_table([header, *rows], sep) if header or rows else "")
        _ok_or_one_line(lambda: read_asegstats2table(p, sep))


@FUZZ
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode("utf-8")))
def test_subject_lists(raw):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "subjects.txt"
        p.write_bytes(raw)
        _ok_or_one_line(lambda: read_subject_list(p))


@pytest.fixture(scope="module")
def tc_bytes() -> bytes:
    data = np.random.default_rng(0).normal(size=(12, 5))
    return timecourse_image(data, func_header(12)).to_bytes()


@FUZZ
@given(data=st.data())
def test_nifti_header_mutations(tc_bytes, data):
    raw = bytearray(tc_bytes)
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, 351))  # the NIfTI-1 header
        raw[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "demo_sub001_timecourses_ica_s1_.nii"
        p.write_bytes(bytes(raw))
        _ok_or_one_line(lambda: gift.read_timecourses(p, 5))
        _ok_or_one_line(lambda: gift.read_component_maps(p, 5))


NUMS = st.one_of(
    st.none(), st.integers(-3, 8), st.floats(allow_nan=True, allow_infinity=True), st.lists(st.floats(0, 5), max_size=4)
)


@FUZZ
@given(
    n_sub=NUMS,
    n_sess=NUMS,
    tr=NUMS,
    names=st.lists(
        st.sampled_from(["/d/sub-01/f.nii,1", "/d/sub-02/f.nii", "", "C:\\d\\sub-03\\f.nii", "x"]), max_size=4
    ),
    version=st.sampled_from(["5", "7.3"]),
    cut=st.one_of(st.none(), st.integers(0, 3000)),
)
def test_parameter_files(*, n_sub, n_sess, tr, names, version, cut):
    files = StructArray({"name": CharMatrix([n] if n else [""])} for n in names) if names else None
    ses = {"numOfSub": n_sub, "numOfSess": n_sess, "TR": tr, "inputFiles": files}
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x_ica_parameter_info.mat"
        save_mat(p, {"sesInfo": ses}, version)
        if cut is not None:
            p.write_bytes(p.read_bytes()[:cut])
        _ok_or_one_line(lambda: load_mat(p, ["sesInfo"]))
        _ok_or_one_line(lambda: read_gift_run(Path(d), "x", "sub-([^/_]+)", Path(d) / "subjects.txt", False))


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 60) | st.floats(-1, 3) | st.sampled_from(["", "x", "gift", "all", "-"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "tr", "dir", "column"]), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = st.sampled_from(
    [
        ("gift", "tr"),
        ("gift", "sessions"),
        ("gift", "components"),
        ("gift", "subjects"),
        ("gift", "prefix"),
        ("gift", "subject_id_regex"),
        ("gift", "tr_policy"),
        ("gift", "timecourses"),
        ("gift", "component_labels"),
        ("freesurfer",),
        ("covariates",),
        ("exclude",),
        ("groups",),
        ("label",),
        ("phenotype_format",),
        ("id_column",),
    ]
)


@pytest.fixture(scope="module")
def fuzz_cohort(tmp_path_factory) -> Path:
    return write_cohort(tmp_path_factory.mktemp("fuzz") / "c", tr=TR)


@settings(FUZZ, max_examples=40)
@given(edits=st.lists(st.tuples(FIELDS, JSONISH), min_size=1, max_size=3))
def test_cohort_configs_through_cli(fuzz_cohort, capsys, edits):
    doc = yaml.safe_load(fuzz_cohort.read_text())
    block = doc["cohorts"]["demo"]
    for path, value in edits:
        target = block
        for key in path[:-1]:
            target = target.setdefault(key, {}) if isinstance(target.get(key, {}), dict) else {}
        target[path[-1]] = value
    with tempfile.TemporaryDirectory(dir=fuzz_cohort.parent) as d:
        cfg = Path(d) / "cohort.yaml"
        doc_text = yaml.safe_dump(doc).replace(
            "phenotype: phenotype.csv", f"phenotype: {fuzz_cohort.parent}/phenotype.csv"
        )
        cfg.write_text(doc_text.replace("dir: gift", f"dir: {fuzz_cohort.parent}/gift"))
        _ok_or_one_line(lambda: load_cohort_config(cfg))
        out = Path(d) / "out"
        rc, err = run_cli(capsys, cfg, "timecourses", out / "X.npz")
        assert rc in (0, 2), err
        if rc == 2:
            line = err.strip()
            assert "\n" not in line and line.startswith("autospec preprocess: error:"), err
            assert not out.exists() or not list(out.iterdir())
        else:
            assert sorted(p.name for p in out.iterdir()) == ["X.npz", "X.npz.manifest.json"]


def test_fuzz_cohort_is_valid(fuzz_cohort):
    """The unmutated fuzz cohort preprocesses: mutations start from a working config."""
    cfg = load_cohort_config(fuzz_cohort)
    assert cfg.gift is not None and cfg.gift.tr is None
    from autospec.data.subjects import cohort_subjects

    assert cohort_subjects(cfg, "timecourses").ids == IDS
