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

The audit never trusts what it reads: any damage (changed or truncated bytes, a file that is not
UTF-8 or not JSON, JSON of the wrong shape, an unreadable or missing file anywhere in the lineage,
including a manifest that an input's record names) is a problem naming the file and what is
wrong, never an exception; a lineage cut short by a missing manifest is never "ok".
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
from ..manifest import find_manifest
from .sidecar import PNG_KEY, PNG_SIDECAR_KEY, provenance_id, sidecar_path_for


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


def embedded_provenance(figure: os.PathLike[str] | str) -> dict[str, str]:
    """The provenance ID and sidecar name embedded in a PNG (text chunks) or PDF (Keywords).

    Raises whatever the image reader raises on a damaged file; :func:`audit` reports it.
    """
    p = Path(figure)
    if p.suffix.lower() == ".png":
        from PIL import Image

        with Image.open(p) as im:
            im.load()  # text chunks after the image data are read only with it (and its CRCs checked)
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


def _is_file(p: Path) -> bool:
    try:
        return p.is_file()
    except (OSError, ValueError):  # a name too long, a NUL byte in a recorded path
        return False


def _why(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _load_json(p: Path) -> dict[str, Any]:
    """A JSON object from a file; ValueError saying what is wrong (not UTF-8, not JSON, not an object)."""
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"not UTF-8 text (byte offset {err.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"a JSON {type(data).__name__}, not an object")
    return data


def _records(doc: dict[str, Any], key: str) -> list[Any]:
    """``doc[key]`` as a list ('' when absent); ValueError when it is something else."""
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"'{key}' is a JSON {type(value).__name__}, not a list")
    return value


def _ref(item: Any) -> dict[str, Any] | None:
    """A file reference ({path, abspath, sha256, manifest}) with string fields, or None when malformed."""
    if isinstance(item, str):
        item = {"path": item}
    if not isinstance(item, dict):
        return None
    if not isinstance(item.get("path") or item.get("abspath"), str):
        return None
    if any(k in item and item[k] is not None and not isinstance(item[k], str) for k in ("path", "abspath", "sha256")):
        return None
    return item


class _Auditor:
    def __init__(self, roots: Sequence[os.PathLike[str] | str]) -> None:
        self.roots = [Path(r) for r in roots]
        self.report = AuditReport()
        self._hash: dict[Path, str | None] = {}
        self._walked: set[Path] = set()
        self._manifests: dict[Path, dict[str, Any] | None] = {}

    # ---------------------------------------------------------------- helpers
    def line(self, depth: int, text: str) -> None:
        self.report.lines.append("  " * depth + text)

    def problem(self, depth: int, text: str) -> None:
        self.report.problems.append(text)
        self.line(depth, "!! " + text)

    def sha(self, p: Path, depth: int = 0) -> str | None:
        """sha256 of a file, or None (reported) when it cannot be read."""
        key = p.resolve()
        if key not in self._hash:
            try:
                self._hash[key] = sha256_file(key)
                self.report.files_checked += 1
            except OSError as err:
                self._hash[key] = None
                self.problem(depth, f"unreadable: {p} ({err.strerror or _why(err)})")
        return self._hash[key]

    def locate(self, ref: dict[str, Any], base: Path | None) -> Path | None:
        raw: str = ref.get("path") or ref["abspath"]  # _ref() made sure one of them is a string
        cands = [Path(raw)]
        if not Path(raw).is_absolute():
            # the recording step's working directory is usually an ancestor of the referencing file
            ups = [base, *base.resolve().parents] if base else []
            cands += [b / raw for b in ups + self.roots]
        if ref.get("abspath"):
            cands.append(Path(ref["abspath"]))
        return next((c for c in cands if _is_file(c)), None)

    # ---------------------------------------------------------------- walk
    def check_file(self, item: Any, depth: int, base: Path | None, via: str, follow: bool = True) -> None:
        ref = _ref(item)
        if ref is None:
            self.problem(depth, f"malformed: {via} (a file reference is not {{path, sha256}}: {repr(item)[:80]})")
            return
        shown: str = ref.get("path") or ref["abspath"]
        p = self.locate(ref, base)
        expected = ref.get("sha256")
        if p is None:
            self.problem(depth, f"missing: {shown} (expected sha256 {expected}, recorded in {via})")
            return
        actual = self.sha(p, depth)
        if actual is None:
            return
        at = f"  (found at {p})" if ref.get("abspath") and p == Path(ref["abspath"]) and str(p) != shown else ""
        if expected and actual != expected:
            self.problem(depth, f"changed: {shown}{at} (expected sha256 {expected}, found {actual}; recorded in {via})")
        else:
            self.line(depth, f"{shown}  ok  sha256 {actual[:12]}{at}")
        if follow:
            self.follow(p, ref, shown, depth, via)

    def follow(self, p: Path, ref: dict[str, Any], shown: str, depth: int, via: str) -> None:
        """Walk on from a checked file to the manifest that describes it."""
        if p.name.endswith("manifest.json"):  # a manifest given as an input: follow it
            self.visit_manifest(p, None, depth + 1)
            return
        man_ref = ref.get("manifest")
        if man_ref is not None:  # recorded: it must exist and be unchanged
            mref = _ref(man_ref)
            if mref is None:
                self.problem(depth + 1, f"malformed: {via} (the manifest of {shown} is not {{path, sha256}})")
                return
            mp = self.locate(mref, p.parent)
            if mp is None:
                self.problem(depth + 1, f"missing: {mref.get('path')} (manifest of {shown}, recorded in {via})")
                return
            found = self.sha(mp, depth + 1)
            if found is None:
                return
            if mref.get("sha256") and found != mref["sha256"]:
                self.problem(
                    depth + 1,
                    f"changed: {mref.get('path')} (manifest of {shown}; expected sha256 "
                    f"{mref['sha256']}, found {found}; recorded in {via})",
                )
        else:
            mp = find_manifest(p)
        if mp is not None:
            self.visit_manifest(mp, p, depth + 1)

    def _load(self, mpath: Path, depth: int) -> dict[str, Any] | None:
        key = mpath.resolve()
        if key not in self._manifests:
            try:
                self._manifests[key] = _load_json(mpath)
            except (OSError, ValueError) as err:
                self._manifests[key] = None
                self.problem(depth, f"unreadable manifest: {mpath} ({_why(err)})")
        return self._manifests[key]

    def visit_manifest(self, mpath: Path, produced: Path | None, depth: int) -> None:
        man = self._load(mpath, depth)
        if man is None:
            return
        step = man.get("step", "?")
        try:
            outputs, inputs = _records(man, "outputs"), _records(man, "inputs")
        except ValueError as err:
            self.problem(depth, f"malformed manifest: {mpath} ({err})")
            return
        if produced is not None:  # the file must still be what the step wrote
            self.check_produced(mpath, produced, outputs, step, depth)
        if mpath.resolve() in self._walked:
            self.line(depth, f"manifest {mpath}  (step {step}; lineage shown above)")
            return
        self._walked.add(mpath.resolve())
        self.line(depth, f"manifest {mpath}  (step {step})")
        for inp in inputs:
            self.check_file(inp, depth + 1, mpath.parent, str(mpath))

    def check_produced(self, mpath: Path, produced: Path, outputs: list[Any], step: Any, depth: int) -> None:
        for out in outputs:
            ref = _ref(out)
            op = self.locate(ref, mpath.parent) if ref is not None else None
            if op is None or op.resolve() != produced.resolve() or not ref or not ref.get("sha256"):
                continue
            found = self.sha(produced, depth)
            if found is not None and found != ref["sha256"]:
                self.problem(
                    depth,
                    f"changed: {produced} (expected sha256 {ref['sha256']} as output of "
                    f"step {step}, found {found}; recorded in {mpath})",
                )


def _find_sidecar(fig: Path, explicit: Path | None, emb: dict[str, str]) -> Path | None:
    if explicit is not None:
        return explicit
    named = emb.get("sidecar")
    if named:  # the figure says where its sidecar is: a missing one is reported, not looked for elsewhere
        return fig.parent / named
    cands = [sidecar_path_for(fig), fig.with_name(fig.name + ".prov.json")]
    return next((c for c in cands if _is_file(c)), None)


def _embedded(a: _Auditor, fig: Path) -> dict[str, str] | None:
    """The figure's embedded provenance; None (reported) when the figure cannot be read."""
    try:
        return embedded_provenance(fig)
    except Exception as err:  # PIL raises many kinds (SyntaxError for a bad CRC, OSError, ValueError, zlib.error)
        a.problem(1, f"changed: {fig} (the figure file is damaged: {type(err).__name__}: {_why(err)})")
        return None


def _audit_sidecar(a: _Auditor, fig: Path, side: Path, emb: dict[str, str] | None) -> None:
    try:
        data = _load_json(side)
        outputs, inputs = _records(data, "outputs"), _records(data, "inputs")
    except (OSError, ValueError) as err:
        a.problem(0, f"unreadable sidecar: {side} ({_why(err)})")
        return
    pid = data.get("provenance_id")
    a.line(0, f"{fig}  provenance {pid}")
    a.line(1, f"sidecar {side}")
    if provenance_id(data) != pid:
        a.problem(1, f"changed: {side} (its content no longer hashes to its provenance ID {pid})")
    if emb is not None and emb.get("id") != pid:
        a.problem(1, f"changed: {fig} (embedded provenance ID {emb.get('id')} does not match the sidecar's {pid})")
    for out in outputs:
        ref = _ref(out)
        item = {k: ref.get(k) for k in ("path", "abspath", "sha256")} if ref is not None else out
        a.check_file(item, 2, side.parent, f"{side} (outputs)", follow=False)
    if not inputs:
        a.problem(1, f"malformed: {side} (no inputs recorded: the lineage cannot be checked)")
    for inp in inputs:
        a.check_file(inp, 2, side.parent, str(side))


def audit(
    target: os.PathLike[str] | str,
    sidecar: os.PathLike[str] | str | None = None,
    roots: Sequence[os.PathLike[str] | str] = (),
) -> AuditReport:
    """Walk the lineage of a figure (or of any output with a manifest) and re-hash everything."""
    fig = Path(target)
    a = _Auditor(roots)
    if not _is_file(fig):
        a.problem(0, f"missing: {fig} (the file to audit)")
        return a.report
    is_figure = fig.suffix.lower() in (".png", ".pdf")
    emb = _embedded(a, fig) if is_figure else {}
    side = _find_sidecar(fig, Path(sidecar) if sidecar else None, emb or {}) if is_figure else None
    if side is None:
        man = find_manifest(fig)
        if man is None:
            a.problem(0, f"no provenance: {fig} has no .prov.json sidecar and no manifest")
            return a.report
        digest = a.sha(fig)
        a.line(0, f"{fig}  sha256 {(digest or '?')[:12]}")
        a.visit_manifest(man, fig, 1)
        return a.report
    if not _is_file(side):
        a.problem(0, f"missing: {side} (provenance sidecar of {fig})")
        return a.report
    _audit_sidecar(a, fig, side, emb)
    return a.report
