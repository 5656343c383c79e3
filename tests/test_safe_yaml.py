"""The bounded YAML loader (autospec.safe_yaml): budgets, refusals, YAML 1.2 numbers, and that every
YAML reader of the project goes through it."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import yaml
from hostile_cases import bomb, dataset

from autospec.errors import InputError
from autospec.safe_yaml import MAX_DEPTH, load_yaml, yaml12_scalar
from autospec.training import load_run_config

REPO = Path(__file__).resolve().parents[1]


def refused(text, match, **kw):
    with pytest.raises(InputError, match=match) as err:
        load_yaml(text, "test doc", **kw)
    assert "\n" not in str(err.value)
    return str(err.value)


@pytest.mark.timeout(10)  # a hang guard: an unbounded loader takes minutes and gigabytes here
@pytest.mark.parametrize("mapping", [False, True])
def test_a_billion_laughs_is_refused_without_expanding_it(mapping):
    text = "bombs:\n" + bomb(9, mapping) + "\nvictim: *a8\n"
    assert len(text) < 1200
    refused(text, r"more than 100,000 values once its \d+ aliases are expanded")
    # the same document with a smaller budget on both axes
    refused("bombs:\n" + bomb(3, mapping), r"more than 500 values", max_nodes=500)


def test_aliases_within_budget_load_and_share_structure():
    doc = load_yaml("base: &b {lr: 0.01, epochs: 3}\nrun1: *b\nrun2: {<<: *b, epochs: 5}\n")
    assert doc["run1"] == {"lr": 0.01, "epochs": 3} and doc["run2"] == {"lr": 0.01, "epochs": 5}
    refused(
        "a: &a 1\n" + "".join(f"b{i}: *a\n" for i in range(20)), r"20 aliases \(at most 10 allowed\)", max_aliases=10
    )


def test_recursive_and_deep_documents_are_refused():
    refused("a: &a [1, *a]\n", r"recursive alias \(line 1\)")
    refused("a: &a {b: *a}\n", r"recursive alias")
    refused("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), rf"nested deeper than {MAX_DEPTH} levels")
    refused("[" * 5000 + "]" * 5000, r"nested deeper")  # far beyond Python's recursion limit: no RecursionError
    # depth reached through aliases only: each level small, the expansion deep
    chain = "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 80))
    refused(chain, r"aliases expand to more than \d+ levels")
    assert load_yaml("[" * 10 + "]" * 10) == [[[[[[[[[[]]]]]]]]]]


def test_size_encoding_and_syntax(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * 3000 + "\n")
    with pytest.raises(InputError, match=r"big.yaml: cfg refused: larger than 1,000 bytes"):
        load_yaml(big, "cfg", max_bytes=1000)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("a: caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin.yaml: unreadable cfg \(not UTF-8 text: byte 0xe9 at offset 6\)"):
        load_yaml(latin, "cfg")
    with pytest.raises(InputError, match=r"none.yaml: cfg file not found"):
        load_yaml(tmp_path / "none.yaml", "cfg")
    with pytest.raises(InputError, match=r"unreadable cfg \(a directory"):
        load_yaml(tmp_path, "cfg")
    refused("a: [1, 2\n", r"unreadable test doc \(invalid YAML: .*\(line 2, column 1\)\)")
    bom = tmp_path / "bom.yaml"
    bom.write_bytes("\ufeffa: 1\n".encode())
    assert load_yaml(bom) == {"a": 1}
    assert load_yaml("") is None and load_yaml(b"a: 1") == {"a": 1}


def test_nul_characters_in_values_are_refused():
    refused('data: "d\\0.npz"\n', r"a NUL character in a value \(line 1\)")
    refused('{"a\\0": 1}', r"a NUL character")


def test_duplicate_keys_and_object_tags_are_refused():
    refused("training:\n  epochs: 3\n  epochs: 30\n", r"duplicate key 'epochs' \(lines 2 and 3\)")
    assert load_yaml("a: &a {x: 1}\nb: {<<: *a, x: 2}\n")["b"] == {"x": 2}  # a merge key may be overridden
    for tag in ("!!python/object/apply:os.system ['true']", "!!python/name:os.system", "!!python/tuple [1]"):
        refused(f"a: {tag}\n", r"could not determine a constructor")


@pytest.mark.parametrize(
    "text, value",
    [
        ("1e-3", 0.001),
        ("2E5", 200000.0),
        (".5", 0.5),
        ("-1.5e+2", -150.0),
        ("1.", 1.0),
        ("1_000.5", 1000.5),
        ("12", 12),
        ("0x1F", 31),
        (".inf", math.inf),
        ("1.2.3", "1.2.3"),
        ("e5", "e5"),
        (".", "."),
        ("'1e-3'", "1e-3"),
    ],
)
def test_yaml12_numbers(text, value):
    got = load_yaml(f"v: {text}")["v"]
    assert got == value and type(got) is type(value)


def test_yaml11_would_read_1e_3_as_text():
    """The reason for the YAML 1.2 resolver: PyYAML's default (YAML 1.1) needs a dot and a signed exponent."""
    assert yaml.safe_load("lr: 1e-3")["lr"] == "1e-3" and load_yaml("lr: 1e-3")["lr"] == 0.001


def test_yaml12_scalar_reads_strings_a_yaml11_loader_left():
    assert [yaml12_scalar(t) for t in ("1e-3", "7", "-2", "true", "False", "x", "1.2.3", "")] == [
        0.001,
        7,
        -2,
        True,
        False,
        None,
        None,
        None,
    ]
    assert math.isnan(yaml12_scalar(".nan"))


def test_a_run_config_with_lr_1e_3_loads_as_a_number(tmp_path):
    data = dataset(tmp_path)
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"data: {data}\nmodel: {{family: mlp}}\ntraining: {{lr: 1e-3, epochs: 2}}\n")
    assert load_run_config(cfg).training["lr"] == 0.001


def test_every_yaml_read_goes_through_the_bounded_loader():
    """No module calls PyYAML's loaders itself, except to read a schema shipped in the package."""
    allowed = {("src/autospec/data/cohort.py", "cohort_schema")}  # packaged text, not user input
    offenders = set()
    for path in sorted((REPO / "src" / "autospec").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, ast.FunctionDef):
                continue
            for node in ast.walk(fn):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("safe_load", "load", "full_load", "unsafe_load", "load_all", "safe_load_all")
                    and getattr(node.func.value, "id", "") == "yaml"
                ):
                    offenders.add((rel, fn.name))
    assert offenders <= allowed, offenders - allowed
