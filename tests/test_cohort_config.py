"""Cohort config loading/validation and the final subject list of a cohort."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from cohort_files import IDS, TYPES, assert_fails, edit_block, real_aseg, run_cli, write_cohort

from autospec.data.cohort import cohort_schema, load_cohort_config
from autospec.data.dataset import load_dataset
from autospec.data.subjects import cohort_subjects
from autospec.errors import InputError

MIN = {
    "phenotype": "p.csv",
    "groups": {"by": [{"column": "Subject Type", "map": {"Patient": "SZ"}}]},
    "gift": {"dir": "g", "prefix": "demo", "tr": 2.0},
}


def _err(block_or_doc, *needles, **kw) -> str:
    with pytest.raises(InputError) as e:
        load_cohort_config(block_or_doc, **kw)
    msg = str(e.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, (n, msg)
    return msg


def test_schema_is_valid_draft_2020_12():
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(cohort_schema())


def test_defaults_and_paths(tmp_path):
    cfg_file = tmp_path / "conf" / "cohorts.yaml"
    cfg_file.parent.mkdir()
    cfg_file.write_text(yaml.safe_dump({"other": 1, "cohorts": {"demo": MIN}}))
    cfg = load_cohort_config(cfg_file)
    assert cfg.name == "demo" and cfg.source == cfg_file.resolve()
    assert cfg.phenotype == (tmp_path / "conf" / "p.csv").resolve()
    assert cfg.phenotype_format == "cobre" and cfg.id_column is None and cfg.exclude == []
    assert cfg.label is None and cfg.groups["keep"] is None and cfg.freesurfer is None
    g = cfg.gift
    assert g.subjects == g.dir / "subjects.txt" and g.n_components == 53 and g.components is None
    tc = g.timecourses
    assert (tc.detrend, tc.low_pass, tc.high_pass, tc.standardize, tc.length_policy, tc.length) == (
        True,
        0.15,
        0.01,
        "zscore_sample",
        "crop",
        None,
    )
    assert (g.spatial_maps.reduce, g.spatial_maps.target_shape, g.spatial_maps.mask) == (
        "max",
        None,
        None,
    )
    d = cfg.to_dict()
    assert d["gift"]["timecourses"]["low_pass"] == 0.15 and d["name"] == "demo"
    assert MIN["gift"] == {"dir": "g", "prefix": "demo", "tr": 2.0}  # caller's dict untouched

    fs = load_cohort_config({**MIN, "freesurfer": {"subjects_dir": "/data/fs"}}, name="x", base_dir=tmp_path).freesurfer
    assert fs.subjects_dir == Path("/data/fs") and fs.etiv_normalize and fs.zscore
    assert load_cohort_config({"cohorts": {"a": MIN}}, base_dir=tmp_path).phenotype == tmp_path / "p.csv"


@pytest.mark.parametrize(
    "change, needles",
    [
        (
            {"gift": {**MIN["gift"], "tr": -1}},
            ["cohort 'demo': field gift.tr:", "-1", "minimum of 0"],
        ),
        ({"gift": {**MIN["gift"], "tr_s": 2}}, ["field gift.tr_s: unknown field"]),
        ({"phenotype": None}, ["field phenotype:", "None is not of type 'string'"]),
        ({"phenotype_format": "csv"}, ["field phenotype_format:", "'csv' is not one of"]),
        ({"groups": {"by": [{"column": "Gender"}]}}, ["field groups.by[0].map: required field"]),
        (
            {"groups": {"by": [{"column": "G", "map": {"Male": "M-1"}}]}},
            ["field groups.by[0].map.Male", "contains '-'"],
        ),
        ({"gift": {**MIN["gift"], "components": [0]}}, ["field gift.components[0]:"]),
        (
            {"gift": {**MIN["gift"], "components": [54]}},
            ["field gift.components:", "54 > n_components 53"],
        ),
        (
            {"gift": {**MIN["gift"], "timecourses": {"low_pass": 0.3}}},
            ["field gift.timecourses.low_pass:", "Nyquist"],
        ),
        (
            {"gift": {**MIN["gift"], "timecourses": {"high_pass": 0.2, "low_pass": 0.1}}},
            ["field gift.timecourses.high_pass:", "below low_pass"],
        ),
        (
            {"gift": {**MIN["gift"], "timecourses": {"length_policy": "trim"}}},
            ["field gift.timecourses.length_policy:"],
        ),
        (
            {"gift": {**MIN["gift"], "spatial_maps": {"target_shape": [5, 6]}}},
            ["field gift.spatial_maps.target_shape:"],
        ),
        ({"gift": None}, ["field freesurfer/gift:", "needs a freesurfer block"]),
        ({"exclude": "A1"}, ["field exclude:", "not of type 'array'"]),
    ],
)
def test_bad_fields(change, needles):
    _err({"cohorts": {"demo": {**MIN, **change}}}, *needles)


def test_required_and_selection_errors(tmp_path):
    block = {k: v for k, v in MIN.items() if k != "groups"}
    _err({"cohorts": {"demo": block}}, "cohort 'demo': field groups: required field is missing")
    _err({"cohorts": {"a": MIN, "b": MIN}}, "several cohorts (a, b)")
    _err({"cohorts": {"a": MIN}}, "no cohort 'b' (cohorts: a)", name="b")
    _err({"cohorts": {"bad name": MIN}}, "'bad name' must match")
    _err({"cohorts": {"a": ["x"]}}, "cohort 'a': block must be a mapping")
    f = tmp_path / "c.yaml"
    f.write_text("groups: {}\n")
    _err(f, str(f), "no top-level 'cohorts:'")
    f.write_text("cohorts: {a: [unclosed\n")
    _err(f, str(f), "unreadable cohort config")
    _err(tmp_path / "none.yaml", "none.yaml: cohort config file not found")


def test_cli_bad_config_field(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c")
    edit_block(cfg, gift={"dir": "gift", "prefix": "demo", "tr": -1})
    assert_fails(capsys, cfg, "timecourses", "cohort 'demo': field gift.tr:")


# ------------------------------------------------------------------ subject selection
def test_subject_order_is_gift_list_and_labels(tmp_path):
    order = [IDS[i] for i in (5, 0, 3, 1, 4, 2)]
    cfg_file = write_cohort(
        tmp_path / "c", label={"column": "Gender", "map": {"Male": "M", "Female": "F"}}, gift_ids=order
    )
    subs = cohort_subjects(load_cohort_config(cfg_file), "timecourses")
    assert subs.ids == order and subs.gift_index == {s: k for k, s in enumerate(order, start=1)}
    assert subs.files[order[0]][0].name == "demo_sub001_timecourses_ica_s1_.nii"
    assert subs.groups[IDS[0]] == "SZ" and subs.labels[IDS[2]] == "F"
    names = [p.name for p in subs.input_files()]
    assert names[:2] == ["phenotype.csv", "demo_ica_parameter_info.mat"] and len(names) == 8


def test_cli_phenotype_subject_without_data(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c", gift_ids=IDS[:5])
    (tmp_path / "c" / "gift" / "demo_sub006_component_ica_s1_.nii").unlink(missing_ok=True)
    param = tmp_path / "c" / "gift" / "demo_ica_parameter_info.mat"
    assert_fails(capsys, cfg, "timecourses", f"subject {IDS[5]}", "not in GIFT's subject list", param)


def test_cli_data_without_phenotype_row(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c")
    p = tmp_path / "c" / "phenotype.csv"
    p.write_text("".join(ln for ln in p.read_text().splitlines(True) if not ln.startswith(IDS[3])))
    assert_fails(capsys, cfg, "timecourses", f"subject {IDS[3]}", "no row in phenotype", p)


def test_cli_excluded_subject_passes(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c", exclude=[IDS[3]])
    p = tmp_path / "c" / "phenotype.csv"
    p.write_text("".join(ln for ln in p.read_text().splitlines(True) if not ln.startswith(IDS[3])))
    (tmp_path / "c" / "gift" / "demo_sub001_timecourses_ica_s1_.nii").unlink()
    edit_block(cfg, exclude=[IDS[3], IDS[0]])  # no phenotype row / no data file: both excluded
    out = tmp_path / "out" / "X.npz"
    rc, err = run_cli(capsys, cfg, "timecourses", out)
    assert rc == 0, err
    ds = load_dataset(out)
    assert list(ds.subject_ids) == [IDS[i] for i in (1, 2, 4, 5)]
    assert ds.meta["left_out"]["excluded"] == sorted([IDS[0], IDS[3]])


def test_cli_empty_cohort(tmp_path, capsys):
    cfg = write_cohort(tmp_path / "c", exclude=IDS)
    assert_fails(capsys, cfg, "timecourses", "cohort 'demo'", "no subjects left")


def test_disenrolled_and_unkept_data_are_ignored(tmp_path):
    import nibabel as nib

    cfg_file = write_cohort(
        tmp_path / "c",
        groups={
            "by": [{"column": "Subject Type", "map": {"Patient": "SZ", "Control": "HC"}}],
            "keep": ["SZ"],
        },
        gift_ids=[*IDS, "A00000099"],  # GIFT ran on a subject who later left the study
    )
    subs = cohort_subjects(load_cohort_config(cfg_file), "timecourses")
    assert subs.ids == [s for s, t in zip(IDS, TYPES) if t == "Patient"]
    assert subs.ignored["disenrolled"] == ["A00000099"]
    assert subs.ignored["not in groups.keep"] == [s for s, t in zip(IDS, TYPES) if t == "Control"]
    assert isinstance(nib.load(subs.files[IDS[0]][0]), nib.Nifti1Image)


def test_volumes_subjects(tmp_path, shared_data):
    cfg_file = write_cohort(tmp_path / "c", real_aseg(shared_data))
    fs = tmp_path / "c" / "freesurfer"
    (fs / "fsaverage" / "stats").mkdir(parents=True)  # templates in SUBJECTS_DIR are not subjects
    shutil.copy(fs / IDS[0] / "stats" / "aseg.stats", fs / "fsaverage" / "stats" / "aseg.stats")
    cfg = load_cohort_config(cfg_file)
    subs = cohort_subjects(cfg, "volumes")
    assert subs.ids == IDS and all(subs.files[s][0].name == "aseg.stats" for s in IDS)

    shutil.copytree(fs / IDS[1], fs / "A00000777")
    with pytest.raises(InputError, match="subject A00000777: has data but no row in phenotype"):
        cohort_subjects(cfg, "volumes")
    shutil.rmtree(fs / "A00000777")
    shutil.rmtree(fs / IDS[2])
    with pytest.raises(InputError) as e:
        cohort_subjects(cfg, "volumes")
    assert f"subject {IDS[2]}" in str(e.value) and str(fs / IDS[2]) in str(e.value)
    with pytest.raises(InputError, match="kind 'volumes' needs a 'freesurfer' block"):
        cohort_subjects(load_cohort_config(write_cohort(tmp_path / "d")), "volumes")


def test_label_classes_differ_from_groups(tmp_path):
    from autospec.data.preprocess import preprocess_timecourses

    cfg = load_cohort_config(
        write_cohort(tmp_path / "c", label={"column": "Gender", "map": {"Male": "male", "Female": "female"}})
    )
    ds = preprocess_timecourses(cfg)
    assert list(ds.class_names) == ["female", "male"] and list(ds.group_names) == ["HC", "SZ"]
    np.testing.assert_array_equal(ds.y, [1, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(ds.groups, [1, 0, 1, 0, 1, 0])


def test_bids_cohort(tmp_path):
    root = tmp_path / "c"
    cfg_file = write_cohort(
        root,
        phenotype="participants.tsv",
        phenotype_format="bids",
        groups={"by": [{"column": "group", "map": {"patient": "PT", "control": "HC"}}]},
    )
    rows = ["participant_id\tage\tgroup"]
    rows += [f"sub-{s}\tn/a\t{'patient' if t == 'Patient' else 'control'}" for s, t in zip(IDS, TYPES)]
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    subs = cohort_subjects(load_cohort_config(cfg_file), "spatialmaps")
    # BIDS participant_id keeps "sub-": the default regex for bids keeps it too
    assert subs.ids == [f"sub-{s}" for s in IDS] and list(subs.groups) == ["PT", "HC"] * 3
    assert subs.input_files()[0].name == "participants.tsv"
