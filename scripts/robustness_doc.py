#!/usr/bin/env python
"""Write the generated table of docs/robustness.md from the hostile-input cases of the tests.

    python scripts/robustness_doc.py            # rewrite the table (runs every case, ~1 min)
    python scripts/robustness_doc.py --check    # exit 1 when the committed doc differs

The cases and their expected messages live in tests/hostile_cases.py; tests/test_hostile_inputs.py
checks each case and that this table is current. Cases that need a private tmpfs (unshare) or
enforced permission bits keep their committed row on machines that cannot run them.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "robustness.md"
BEGIN, END = "<!-- BEGIN GENERATED: scripts/robustness_doc.py -->", "<!-- END GENERATED -->"
sys.path.insert(0, str(REPO / "tests"))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(outcomes: dict[str, tuple[int, str, str]], old: str | None = None) -> str:
    """The doc with its generated region rebuilt from ``outcomes`` (id -> status, line, stderr)."""
    from hostile_cases import CASES, GROUPS

    old = DOC.read_text() if old is None else old
    kept = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([\w^-]+)` \|.*$", old, re.M)}
    out = [BEGIN, ""]
    for group, title in GROUPS.items():
        cases = [c for c in CASES if c.group == group]
        out += [f"### {title} ({len(cases)})", "", "| case | input | exit | message |", "|---|---|---|---|"]
        for c in cases:
            if c.id in outcomes:
                status, line, _ = outcomes[c.id]
                out.append(f"| `{c.id}` | {_cell(c.what)} | {status} | `{_cell(line)}` |")
            else:
                out.append(
                    kept.get(c.id, f"| `{c.id}` | {_cell(c.what)} | ? | (not run on the machine that wrote this) |")
                )
        out.append("")
    out.append(END)
    head, _, rest = old.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return head + "\n".join(out) + tail


def main(argv: list[str]) -> int:
    from hostile_cases import CASES, available, outcome

    with tempfile.TemporaryDirectory() as tmp:
        outcomes = {c.id: outcome(c, Path(tmp)) for c in CASES if available(c.needs)}
    new = render(outcomes)
    if "--check" in argv:
        if new != DOC.read_text():
            print(f"{DOC} is stale: run python scripts/robustness_doc.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new)
    print(f"wrote {DOC}: {len(outcomes)} of {len(CASES)} cases run")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
