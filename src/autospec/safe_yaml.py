"""The one YAML loader of the project: bounded in size, depth and alias expansion.

Every YAML document AutoSpec reads (workflow, cohort and run configs, the packaged schemas) goes
through :func:`load_yaml`. It is PyYAML's safe loader (no Python objects are ever built) with:

- a byte budget (``max_bytes``) checked before parsing;
- a depth budget (``max_depth``) checked while composing, before Python's recursion limit is near;
- an expansion budget: the node count of the document *with every alias expanded*
  (``max_nodes``) and the number of aliases (``max_aliases``), computed on the composed node graph
  before anything is built, so a "billion laughs" file (nested anchors) is refused in
  milliseconds instead of expanding to gigabytes in whatever walks the result later (config
  hashing, JSON-schema validation, ``copy.deepcopy``); recursive aliases are refused too;
- duplicate keys refused (PyYAML silently keeps the last one: ``epochs: 3`` twice is a typo), and
  NUL characters in values (an escape could put one in a path, which the OS refuses later);
- YAML 1.2 floats: ``1e-3``, ``2E5``, ``.5`` are numbers (YAML 1.1, PyYAML's default, needs a dot
  and a signed exponent, so ``lr: 1e-3`` would be the *string* "1e-3").

Any problem is an :class:`~autospec.errors.InputError` of one line naming the file (or ``what``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import InputError

#: budgets; generous for configs (the default workflow config has ~400 nodes and depth 6)
MAX_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 100_000
MAX_ALIASES = 1_000

_FLOAT_12 = re.compile(
    r"""^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?   # 1.5 1. 1.5e3
        |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?             # .5
        |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+                     # 1e-3 2E5
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_FLOAT_TAG = "tag:yaml.org,2002:float"
_MERGE_TAG = "tag:yaml.org,2002:merge"


_INT_12 = re.compile(r"^[-+]?[0-9]+$")


def yaml12_scalar(text: str) -> int | float | bool | None:
    """What YAML 1.2 (core schema) reads a plain scalar as, when it is an int, float or bool.

    For strings that an older loader left as text (Snakemake reads its config files with YAML 1.1:
    ``1e-3`` stays a string there; ``--config k=v`` values nested in mappings stay strings).
    None when ``text`` is none of these.
    """
    if _INT_12.match(text):
        return int(text)
    if _FLOAT_12.match(text):
        return float(text.replace("_", "").lower().replace(".inf", "inf").replace(".nan", "nan"))
    return {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}.get(text)


class _Refused(Exception):
    """A budget or rule broken while loading (turned into InputError with the source named)."""


class BoundedSafeLoader(yaml.SafeLoader):
    """SafeLoader with a depth budget, duplicate-key refusal and YAML 1.2 floats."""

    max_depth = MAX_DEPTH

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]  # unannotated in types-PyYAML
                where = f"line {event.start_mark.line + 1}" if event.start_mark else "position unknown"
                raise _Refused(f"nested deeper than {self.max_depth} levels ({where})")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_scalar(self, node: ScalarNode | MappingNode) -> str:
        value = super().construct_scalar(node)
        if isinstance(value, str) and "\x00" in value:  # only an escape ("\0") can put it there
            raise _Refused(
                f"a NUL character in a value (line {node.start_mark.line + 1}); no file name or field holds one"
            )
        return value

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, ScalarNode):
                    continue
                key = self.construct_object(key_node)
                if key in seen:
                    raise _Refused(f"duplicate key {key!r} (lines {seen[key] + 1} and {key_node.start_mark.line + 1})")
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


# YAML 1.2 floats instead of YAML 1.1's: replace the implicit float resolver of this loader only
BoundedSafeLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _FLOAT_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
BoundedSafeLoader.add_implicit_resolver(_FLOAT_TAG, _FLOAT_12, list("-+0123456789."))


def _expanded_size(root: Node, max_nodes: int, max_depth: int, aliases: int) -> int:
    """Node count of the document with every alias expanded; raises _Refused over budget.

    Linear in the number of distinct nodes (sizes are memoised per node object; an alias is the
    same node object as its anchor), so a bomb is measured without being expanded.
    """
    sizes: dict[int, int] = {}
    heights: dict[int, int] = {}
    open_: set[int] = set()

    def visit(node: Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            if depth + heights[key] > max_depth:
                raise _Refused(f"aliases expand to more than {max_depth} levels")
            return sizes[key]
        if key in open_:
            raise _Refused(f"recursive alias (line {node.start_mark.line + 1})")
        if depth > max_depth:
            raise _Refused(f"aliases expand to more than {max_depth} levels")
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        open_.add(key)
        total, height = 1, 0
        for child in children:
            total += visit(child, depth + 1)
            height = max(height, heights[id(child)] + 1)
            if total > max_nodes:
                if aliases:
                    raise _Refused(
                        f"more than {max_nodes:,} values once its {aliases:,} aliases are expanded (a YAML bomb?)"
                    )
                raise _Refused(f"more than {max_nodes:,} values")
        open_.discard(key)
        sizes[key], heights[key] = total, height
        return total

    return visit(root, 0)


def _read(path: Path, max_bytes: int, what: str) -> str:
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise InputError(f"{path}: {what} file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: unreadable {what} (a directory, not a file)") from None
    except OSError as err:
        raise InputError(f"{path}: unreadable {what} ({err.strerror or err})") from None
    if len(data) > max_bytes:
        raise InputError(f"{path}: {what} refused: larger than {max_bytes:,} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(
            f"{path}: unreadable {what} (not UTF-8 text: byte 0x{data[err.start]:02x} at offset {err.start})"
        ) from None


def _text_of(path_or_text: os.PathLike[str] | str | bytes, what: str, max_bytes: int) -> tuple[str, str]:
    """(name for messages, document text) of a file or an in-memory document."""
    if isinstance(path_or_text, os.PathLike):
        return str(path_or_text), _read(Path(path_or_text), max_bytes, what)
    where = f"<{what}>"
    if isinstance(path_or_text, bytes):
        try:
            path_or_text = path_or_text.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise InputError(f"{where}: unreadable {what} (not UTF-8 text: offset {err.start})") from None
    if len(path_or_text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise InputError(f"{where}: {what} refused: larger than {max_bytes:,} bytes")
    return where, path_or_text


def load_yaml(
    path_or_text: os.PathLike[str] | str | bytes,
    what: str = "YAML document",
    *,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    max_nodes: int = MAX_NODES,
    max_aliases: int = MAX_ALIASES,
) -> Any:
    """Load one YAML document within the budgets; None for an empty document.

    Parameters
    ----------
    path_or_text : a path (``os.PathLike``) is read as a file; a ``str`` or ``bytes`` is the
        document itself.
    what : what the document is, for messages (``"run config"``, ``"cohort config"``): they read
        ``<file>: <what> file not found``, ``<file>: unreadable <what> (<why>)`` or
        ``<file>: <what> refused: <budget or rule broken>``.

    Raises
    ------
    InputError
        One line naming the file: missing, unreadable (not UTF-8, invalid YAML, a tag that would
        build a Python object) or refused (too large, too deep, a bomb, a recursive alias, a
        duplicate key).
    """
    where, text = _text_of(path_or_text, what, max_bytes)
    loader = None
    try:
        loader = BoundedSafeLoader(text)  # its reader refuses non-printable characters at once
        loader.max_depth = max_depth
        root = loader.get_single_node()
        if root is None:
            return None
        if loader._aliases > max_aliases:
            raise _Refused(f"{loader._aliases:,} aliases (at most {max_aliases:,} allowed)")
        _expanded_size(root, max_nodes, max_depth, loader._aliases)
        return loader.construct_document(root)
    except _Refused as err:
        raise InputError(f"{where}: {what} refused: {err}") from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = " ".join(str(err.problem or err.context or "invalid").split())
        raise InputError(f"{where}: unreadable {what} (invalid YAML: {problem}{at})") from None
    except yaml.YAMLError as err:
        raise InputError(f"{where}: unreadable {what} (invalid YAML: {' '.join(str(err).split())})") from None
    except RecursionError:
        raise InputError(f"{where}: {what} refused: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
