"""Does the recorder see every use of every recorded parameter? A check on the autograd graph.

Each module call the recorder captures (an adapter call, a generic call) spans an interval of
autograd sequence numbers: the nodes created inside it. A parameter's *uses* are the graph nodes
that consume it, looking through pure casts/views/transposes (which autocast may cache and share
between calls). A use must lie inside exactly one captured call for that parameter; a use outside
every captured call (``F.linear(h, self.emb.weight)`` in a parent's forward, a penalty on the
weight in the loss, gradient checkpointing) would make the recorded gradient miss a
contribution; inside two, count it twice. Either refuses the recording with the cause.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch

_PASS_THROUGH = {
    "ToCopyBackward0",
    "TBackward0",
    "ViewBackward0",
    "UnsafeViewBackward0",
    "ReshapeAliasBackward0",
    "ExpandBackward0",
    "PermuteBackward0",
    "TransposeBackward0",
    "CloneBackward0",
    "AliasBackward0",
    "UnsqueezeBackward0",
    "SqueezeBackward0",
    "SqueezeBackward1",
}


def sequence_nr() -> int:
    """The autograd sequence number the next graph node will get (this thread)."""
    return int(torch._C._autograd._get_sequence_nr())


@dataclass
class Span:
    """The autograd nodes created by one captured call: sequence numbers [start, end)."""

    name: str
    keys: frozenset[str]
    start: int
    end: int


def _graph(roots: Iterable[object]) -> dict[object, list[object]]:
    """consumers[node] for every node reachable from ``roots`` (grad_fn objects)."""
    consumers: dict[object, list[object]] = {}
    seen: set[int] = set()
    stack = [r for r in roots if r is not None]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for nxt, _ in getattr(node, "next_functions", ()):
            if nxt is None:
                continue
            consumers.setdefault(nxt, []).append(node)
            stack.append(nxt)
    return consumers


def uncovered_uses(
    roots: Sequence[object], params: Mapping[str, torch.Tensor], spans: Sequence[Span], since: int
) -> list[tuple[str, str, int]]:
    """(key, node type, number of captured calls containing it) for each use not covered once.

    Uses created before sequence number ``since`` (the record() block's start) are not this
    step's: they are a problem only for a weight that is also used inside the block (inside
    = -1 in the result); a weight used only before the block is simply not recorded.
    """
    consumers = _graph(roots)
    accumulators = {id(getattr(n, "variable", None)): n for n in consumers if type(n).__name__ == "AccumulateGrad"}
    problems = []
    for key, p in params.items():
        acc = accumulators.get(id(p))
        if acc is None:
            continue  # not used in this graph
        seqs = [(int(u._sequence_nr()), type(u).__name__) for u in _uses(acc, consumers)]  # type: ignore[attr-defined]
        in_block = [(seq, kind) for seq, kind in seqs if seq >= since]
        if in_block and len(in_block) < len(seqs):
            problems.append((key, next(kind for seq, kind in seqs if seq < since), -1))
        for seq, kind in in_block:
            inside = sum(1 for s in spans if key in s.keys and s.start <= seq < s.end)
            if inside != 1:
                problems.append((key, kind, inside))
    return problems


def _uses(acc: object, consumers: dict[object, list[object]]) -> list[object]:
    out, stack, seen = [], list(consumers.get(acc, [])), set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if type(node).__name__ in _PASS_THROUGH:
            stack.extend(consumers.get(node, []))
        else:
            out.append(node)
    return out


def describe(problems: Sequence[tuple[str, str, int]]) -> str:
    lines = []
    for key, node, inside in problems:
        if inside == -1:
            lines.append(
                f"{key!r} is used by {node} created before the record() block and again inside it: run the "
                "whole forward inside the block"
            )
        elif inside == 0:
            lines.append(
                f"{key!r} is used by {node} outside the modules the recorder watches for it (e.g. "
                "F.linear(h, self.emb.weight) in a parent's forward, a penalty on the weight in the loss, "
                "or gradient checkpointing): its recorded gradient would miss that contribution. Make the use "
                "a module call (a tied nn.Linear: dec.weight = emb.weight) or leave the weight out with include="
            )
        else:
            lines.append(f"{key!r}: a use by {node} lies inside {inside} captured calls (it would be counted twice)")
    return "; ".join(lines)
