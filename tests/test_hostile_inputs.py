"""Every hostile input of tests/hostile_cases.py: refused with exit status 2 and ONE line naming
the file, field or argument (audit: exit 1, the first line names the damaged file), never a
traceback, never a partial output; docs/robustness.md lists them all and is current."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from hostile_cases import CASES, ERROR_LINE, available, outcome

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def hostile_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_refused_in_one_line(case, hostile_tmp):
    if not available(case.needs):
        pytest.skip(f"needs {case.needs} (not available here)")
    status, line, err = outcome(case, hostile_tmp)
    assert "Traceback" not in err and "internal error" not in err, err
    assert status == case.status, err
    if case.status == 2:  # one error line (a warning logged before it is not an error)
        assert len([ln for ln in err.splitlines() if ERROR_LINE.match(ln)]) == 1, err
        assert line.startswith("autospec "), line
    assert re.search(case.expect, line), f"{line!r} does not match {case.expect!r}"
    left = [ln for ln in err.splitlines() if ln.startswith("LEFT:")]
    assert all(ln.strip() == "LEFT:" for ln in left), f"partial output left behind: {left}"


def test_there_are_at_least_40_refused_input_classes():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)


def test_robustness_doc_is_current(hostile_tmp):
    sys.path.insert(0, str(REPO / "scripts"))
    from robustness_doc import DOC, render

    runnable = {c.id for c in CASES if available(c.needs)}
    new = render({c.id: outcome(c, hostile_tmp) for c in CASES if c.id in runnable})
    old = DOC.read_text()
    # rows of cases this machine cannot run are taken from the committed doc
    assert _rows(new, runnable) == _rows(old, runnable), (
        "docs/robustness.md is stale: run python scripts/robustness_doc.py"
    )
    assert len(_rows(old, {c.id for c in CASES})) == len(CASES)


def _rows(doc: str, ids: set[str]) -> dict[str, str]:
    rows = {}
    for ln in doc.splitlines():
        m = re.match(r"^\| `([\w^-]+)` \|", ln)
        if m and m.group(1) in ids:
            rows[m.group(1)] = ln
    return rows
