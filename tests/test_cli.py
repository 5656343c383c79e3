"""The command line's one error path (bugs and exhausted memory included) and the command line
that the figures' provenance records, handed over by the CLI (provenance never imports it)."""

from __future__ import annotations

import ast
import json
import shlex
import sys
from pathlib import Path

import pytest
from hostile_cases import cli
from recorded_runs import make_dataset, make_run

from autospec.commands import make_sinusoid

REPO = Path(__file__).resolve().parents[1]


def test_a_bug_is_one_line_with_exit_1_and_debug_shows_the_traceback(monkeypatch, tmp_path):
    def broken(args):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(make_sinusoid, "run", broken)
    rc, err = cli("make-sinusoid", "--out", tmp_path / "x.npz")
    assert rc == 1 and err.count("\n") == 1
    assert err.startswith("autospec make-sinusoid: error: internal error TypeError: unsupported operand (a bug;")
    monkeypatch.setenv("AUTOSPEC_DEBUG", "1")
    with pytest.raises(TypeError):
        cli("make-sinusoid", "--out", tmp_path / "x.npz")


def test_memory_exhaustion_is_one_line_with_exit_2(monkeypatch, tmp_path):
    import numpy as np

    def too_big(*a, **k):
        return np.empty((2**40,), dtype=np.float64)  # 8 TiB: numpy refuses at once (MemoryError)

    monkeypatch.setattr("autospec.data.sinusoid.make_sinusoids", too_big)
    rc, err = cli("make-sinusoid", "--out", tmp_path / "x.npz")
    assert rc == 2 and err.startswith("autospec make-sinusoid: error: out of memory (") and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_help_still_prints_and_exits_0(capsys):
    rc, _ = cli("train", "--help")
    assert rc == 0


def test_the_sidecar_records_the_command_the_cli_was_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ds = make_dataset(Path("data") / "data.npz")
    run = make_run(Path("run0"), ds, seed=0, epochs=2, subjects=False)
    argv = ["plot", "--kind", "curves", "--run", f"A B={run}", "--out-png", "f i g.png", "--rule", "r"]
    rc, err = cli(*argv)
    assert rc == 0, err
    side = json.loads(Path("f i g.prov.json").read_text())
    assert shlex.split(side["command"]) == [sys.executable, "-m", "autospec", *argv]


def test_provenance_does_not_import_the_cli():
    """No hidden loop cli -> commands/plot -> figures -> provenance -> cli."""
    for path in (REPO / "src/autospec/provenance").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [a.name for a in node.names]
                assert "cli" not in names and not (node.module or "").endswith("cli"), f"{path.name} imports cli"
