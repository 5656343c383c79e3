"""The README's promises that can go stale: its two set-up commands, CI calling the test command,
and every local file it links to."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _first_code_block() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert block, "the README starts with a bash block of its set-up commands"
    return [ln.split("#")[0].strip() for ln in block.group(1).splitlines() if ln.split("#")[0].strip()]


def test_readme_starts_with_exactly_two_commands_that_are_make_targets():
    assert README.index("```bash") < README.index("\n## "), "the commands come before any section"
    commands = _first_code_block()
    assert commands == ["make study", "make test"]
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    for cmd in commands:
        assert re.search(rf"^{cmd.split()[1]}:", makefile, re.M), f"{cmd}: no such Makefile target"
    assert re.search(r"^study:.*\n(?:\t.*\n)*\t.*snakemake --cores", makefile, re.M)


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^make test$", ci, re.M)


def test_every_local_link_of_the_readme_exists():
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if "://" not in link]
    assert local, "the README links to its docs"
    missing = [link for link in local if not (REPO / link).exists()]
    assert not missing, missing
    for path in re.findall(r"`((?:docs|benchmarks|config|profiles)/[\w./-]+\.(?:md|yaml|sh|py))`", README):
        assert (REPO / path).exists(), path
