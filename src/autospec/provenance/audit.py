"""Audit a figure's lineage: figure -> sidecar -> inputs -> their manifests -> their inputs ...

Every file met is re-hashed and compared with the sha256 recorded where it was referenced (the
sidecar, or a manifest's ``inputs`` / ``outputs``). The walk is depth-first in the order the
references are recorded; the first problem in that order is the one reported. A manifest's inputs
are walked once (a second reference says so instead of repeating them), but every file found
through a manifest is checked against that manifest's record of it as an output.

Relative paths are tried relative to the working directory, then to the directory of the file
that references them and each of its ancestors (the recording step ran in one of them, as a
workflow's working directory usually is), then any ``roots`` given; recorded absolute paths are
tried last. Whatever file is found must still match the recorded sha256.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import sha256_file
from .sidecar import PNG_KEY, PNG_SIDECAR_KEY, find_manifest, provenance_id, sidecar_path_for


@dataclass
class AuditReport:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    files_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> str | None:
        return self.problems[0] if self.problems else None


def embedded_provenance(figure: os.PathLike | str) -> dict[str, str]:
    """The provenance ID and sidecar name embedded in a PNG (text chunks) or PDF (Keywords)."""
    p = Path(figure)
    if p.suffix.lower() == ".png":
        from PIL import Image

        with Image.open(p) as im:
            text = dict(getattr(im, "text", {}) or {})
        return {k: v for k, v in (("id", text.get(PNG_KEY)), ("sidecar", text.get(PNG_SIDECAR_KEY))) if v}
    if p.suffix.lower() == ".pdf":
        m = re.search(rb"/Keywords\s*\(([^)]*)\)", p.read_bytes())
        out = {}
        if m:
            for tok in m.group(1).decode("latin-1").split():
                k, _, v = tok.partition("=")
                if k == PNG_KEY:
                    out["id"] = v
                elif k == PNG_SIDECAR_KEY:
                    out["sidecar"] = v
        return out
    return {}


class _Auditor:
    def __init__(self, roots: Sequence[Path]):
        self.roots = [Path(r) for r in roots]
        self.report = AuditReport()
        self._hash: dict[Path, str] = {}
        self._walked: set[Path] = set()
        self._manifests: dict[Path, dict[str, Any] | None] = {}

    # ---------------------------------------------------------------- helpers
    def line(self, depth: int, text: str) -> None:
        self.report.lines.append("  " * depth + text)

    def problem(self, depth: int, text: str) -> None:
        self.report.problems.append(text)
        self.line(depth, "!! " + text)

    def sha(self, p: Path) -> str:
        key = p.resolve()
        if key not in self._hash:
            self._hash[key] = sha256_file(key)
            self.report.files_checked += 1
        return self._hash[key]

    def locate(self, ref: dict[str, Any] | str, base: Path | None) -> Path | None:
        if isinstance(ref, str):
            ref = {"path": ref}
        raw = ref.get("path") or ref.get("abspath")
        if not raw:
            return None
        cands = [Path(raw)]
        if not Path(raw).is_absolute():
            # the recording step's working directory is usually an ancestor of the referencing file
            ups = [base, *base.resolve().parents] if base else []
            cands += [b / raw for b in ups + self.roots]
        if ref.get("abspath"):
            cands.append(Path(ref["abspath"]))
        for c in cands:
            if c.is_file():
                return c
        return None

    # ---------------------------------------------------------------- walk
    def check_file(self, ref: dict[str, Any], depth: int, base: Path | None, via: str, follow: bool = True) -> None:
        shown = ref.get("path") or ref.get("abspath")
        p = self.locate(ref, base)
        expected = ref.get("sha256")
        if p is None:
            self.problem(depth, f"missing: {shown} (expected sha256 {expected}, recorded in {via})")
            return
        actual = self.sha(p)
        if expected and actual != expected:
            self.problem(depth, f"changed: {shown} (expected sha256 {expected}, found {actual}; recorded in {via})")
        else:
            self.line(depth, f"{shown}  ok  sha256 {actual[:12]}")
        if not follow:
            return
        if p.name.endswith("manifest.json"):  # a manifest given as an input: follow it
            self.visit_manifest(p, None, depth + 1)
            return
        man_ref = ref.get("manifest")
        if isinstance(man_ref, dict):
            mp = self.locate(man_ref, p.parent)
            if mp is None:
                self.problem(depth + 1, f"missing: {man_ref.get('path')} (manifest of {shown}, recorded in {via})")
                return
            if man_ref.get("sha256") and self.sha(mp) != man_ref["sha256"]:
                self.problem(
                    depth + 1,
                    f"changed: {man_ref.get('path')} (manifest of {shown}; expected sha256 "
                    f"{man_ref['sha256']}, found {self.sha(mp)}; recorded in {via})",
                )
        else:
            mp = find_manifest(p)
        if mp is not None:
            self.visit_manifest(mp, p, depth + 1)

    def _load(self, mpath: Path) -> dict[str, Any] | None:
        key = mpath.resolve()
        if key not in self._manifests:
            try:
                self._manifests[key] = json.loads(mpath.read_text())
            except (OSError, json.JSONDecodeError) as err:
                self._manifests[key] = None
                self.problem(0, f"unreadable manifest: {mpath} ({err})")
        return self._manifests[key]

    def visit_manifest(self, mpath: Path, produced: Path | None, depth: int) -> None:
        man = self._load(mpath)
        if man is None:
            return
        step = man.get("step", "?")
        if produced is not None:  # the file must still be what the step wrote
            for out in man.get("outputs") or []:
                op = self.locate(out, mpath.parent) if isinstance(out, dict) else None
                if op is not None and op.resolve() == produced.resolve() and out.get("sha256"):
                    if self.sha(produced) != out["sha256"]:
                        self.problem(
                            depth,
                            f"changed: {produced} (expected sha256 {out['sha256']} as output of "
                            f"step {step}, found {self.sha(produced)}; recorded in {mpath})",
                        )
        if mpath.resolve() in self._walked:
            self.line(depth, f"manifest {mpath}  (step {step}; lineage shown above)")
            return
        self._walked.add(mpath.resolve())
        self.line(depth, f"manifest {mpath}  (step {step})")
        for inp in man.get("inputs") or []:
            self.check_file(inp if isinstance(inp, dict) else {"path": str(inp)}, depth + 1, mpath.parent, str(mpath))


def _find_sidecar(fig: Path, explicit: Path | None) -> Path | None:
    if explicit is not None:
        return explicit
    emb = embedded_provenance(fig).get("sidecar")
    cands = ([fig.parent / emb] if emb else []) + [sidecar_path_for(fig), fig.with_name(fig.name + ".prov.json")]
    return next((c for c in cands if c.is_file()), None)


def audit(target: os.PathLike | str, sidecar: os.PathLike | str | None = None, roots: Sequence = ()) -> AuditReport:
    """Walk the lineage of a figure (or of any output with a manifest) and re-hash everything."""
    fig = Path(target)
    a = _Auditor(roots)
    if not fig.is_file():
        a.problem(0, f"missing: {fig} (the file to audit)")
        return a.report
    side = _find_sidecar(fig, Path(sidecar) if sidecar else None) if fig.suffix.lower() in (".png", ".pdf") else None
    if side is None:
        man = find_manifest(fig)
        if man is None:
            a.problem(0, f"no provenance: {fig} has no .prov.json sidecar and no manifest")
            return a.report
        a.line(0, f"{fig}  sha256 {a.sha(fig)[:12]}")
        a.visit_manifest(man, fig, 1)
        return a.report
    if not side.is_file():
        a.problem(0, f"missing: {side} (provenance sidecar of {fig})")
        return a.report
    try:
        data = json.loads(side.read_text())
    except json.JSONDecodeError as err:
        a.problem(0, f"unreadable sidecar: {side} ({err})")
        return a.report
    pid = data.get("provenance_id")
    a.line(0, f"{fig}  provenance {pid}")
    a.line(1, f"sidecar {side}")
    if provenance_id(data) != pid:
        a.problem(1, f"changed: {side} (its content no longer hashes to its provenance ID {pid})")
    emb = embedded_provenance(fig).get("id")
    if emb != pid:
        a.problem(1, f"changed: {fig} (embedded provenance ID {emb} does not match the sidecar's {pid})")
    for out in data.get("outputs") or []:
        a.check_file(
            {k: out.get(k) for k in ("path", "abspath", "sha256")}, 2, side.parent, f"{side} (outputs)", follow=False
        )
    for inp in data.get("inputs") or []:
        a.check_file(inp, 2, side.parent, str(side))
    return a.report
