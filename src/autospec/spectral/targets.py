"""Which weights a recorder watches, and by which route (adapter or generic replay)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field

from torch import nn

from .adapters import adapter_for, claims_subtree
from .adapters.base import LayerAdapter


@dataclass
class Target:
    """One module whose ≥2-D weights are recorded."""

    name: str  # module name in the model ("" for the root)
    module: nn.Module
    adapter: LayerAdapter | None  # None: generic replay path
    keys: list[str]  # parameter names (model.named_parameters() style)
    params: list[nn.Parameter] = field(default_factory=list)
    shapes: list[tuple[int, int]] = field(default_factory=list)  # (n_out, n_in) per key


def _wanted(name: str, module: nn.Module, include) -> bool:
    if include is None:
        return True
    for item in include:
        if isinstance(item, type) and isinstance(module, item):
            return True
        if isinstance(item, str) and (name == item or fnmatch.fnmatchcase(name, item)):
            return True
    return False


def _matrix_shape(p: nn.Parameter) -> tuple[int, int]:
    return int(p.shape[0]), int(p[0].numel())


def find_targets(model: nn.Module, include: Iterable | None = None) -> list[Target]:
    """Every module owning a recordable ≥2-D trainable weight, in ``named_parameters`` order.

    ``include``: parameter names / fnmatch patterns (``"encoder.*"``) and/or module types; a
    parameter is kept when any item matches its name or its owning module.
    """
    include = None if include is None else list(include)
    targets: list[Target] = []
    claimed: list[str] = []
    for mname, module in model.named_modules():
        if any(mname == c or mname.startswith(c + ".") for c in claimed):
            continue
        prefix = f"{mname}." if mname else ""
        if claims_subtree(module):
            claimed.append(mname)
            named = list(module.named_parameters(prefix=mname))
            adapter = None
        else:
            named = [(prefix + n, p) for n, p in module.named_parameters(recurse=False)]
            adapter = adapter_for(module)
        named = [(n, p) for n, p in named if p.dim() >= 2 and p.requires_grad and _wanted(n, module, include)]
        if not named:
            continue
        if adapter is not None:
            wname = prefix + adapter.weight_name
            via = [(n, p) for n, p in named if n == wname]
            if via:
                targets.append(Target(mname, module, adapter, [wname], [via[0][1]], [adapter.weight_shape(module)]))
            named = [(n, p) for n, p in named if n != wname]
        if named:
            targets.append(
                Target(
                    mname,
                    module,
                    None,
                    [n for n, _ in named],
                    [p for _, p in named],
                    [_matrix_shape(p) for _, p in named],
                )
            )
    order = {n: i for i, (n, _) in enumerate(model.named_parameters())}
    targets.sort(key=lambda t: order.get(t.keys[0], 0))
    return targets
