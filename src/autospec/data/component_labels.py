"""Component label tables and component selection by number, domain or label.

Two shapes are read:

- a CSV with a header naming the columns ``IC`` (1-based component number), ``label`` and/or
  ``domain`` (one row per component, other columns ignored);
- GIFT's own network files (``icatb_templates/*.txt``, e.g. ``RSN_28.txt``,
  ``NeuroMark_fMRI_1.0_modelorder-500.txt``): one line per network,
  ``<name>, <IC>, <IC>, ...``; each listed component gets that name as its domain and label.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .neuromark import N_COMPONENTS, component_domains
from .textfile import read_text


@dataclass
class ComponentLabels:
    """Domain and label of components 1..n (``None`` where the table says nothing)."""

    domains: dict[int, str]
    labels: dict[int, str]
    source: str

    def domain_list(self, components: Sequence[int]) -> list[str | None]:
        return [self.domains.get(c) for c in components]


def neuromark_labels() -> ComponentLabels:
    """The NeuroMark_1 domains of components 1..53 (:mod:`autospec.data.neuromark`)."""
    doms = dict(enumerate(component_domains(), start=1))
    return ComponentLabels(doms, dict(doms), "NeuroMark_1 template")


def _ic(text: str, where: str, n_components: int) -> int:
    try:
        ic = int(text.strip())
    except ValueError:
        raise InputError(f"{where}: component number {text.strip()!r} is not a whole number") from None
    if not 1 <= ic <= n_components:
        raise InputError(f"{where}: component {ic} outside 1..{n_components} (gift.n_components)")
    return ic


def _from_csv(rows: list[list[str]], header: list[str], p: Path, n_components: int) -> ComponentLabels:
    if "label" not in header and "domain" not in header:
        raise InputError(f"{p}: header has IC but neither a 'label' nor a 'domain' column")
    col = {name: header.index(name) for name in ("ic", "label", "domain") if name in header}
    domains: dict[int, str] = {}
    labels: dict[int, str] = {}
    seen: set[int] = set()
    for line, row in enumerate(rows[1:], start=2):
        if len(row) < len(header):
            raise InputError(f"{p}:{line}: {len(row)} fields, header has {len(header)}")
        ic = _ic(row[col["ic"]], f"{p}:{line}", n_components)
        if ic in seen:
            raise InputError(f"{p}:{line}: component {ic} listed twice")
        seen.add(ic)
        for name, target in (("label", labels), ("domain", domains)):
            if name in col and row[col[name]].strip():
                target[ic] = row[col[name]].strip()
    return ComponentLabels(domains, labels, str(p))


def _from_network_file(rows: list[list[str]], p: Path, n_components: int) -> ComponentLabels:
    domains: dict[int, str] = {}
    for line, row in enumerate(rows, start=1):
        name = row[0].strip()
        if not name or len(row) < 2:
            raise InputError(f"{p}:{line}: expected '<network name>, <IC>, <IC>, ...'")
        for cell in (c for c in row[1:] if c.strip()):
            ic = _ic(cell, f"{p}:{line}", n_components)
            if ic in domains:
                raise InputError(f"{p}:{line}: component {ic} already in network {domains[ic]!r}")
            domains[ic] = name
    return ComponentLabels(domains, dict(domains), str(p))


def read_component_labels(path: os.PathLike[str] | str, n_components: int) -> ComponentLabels:
    """Read a label table (CSV with IC/label/domain columns, or a GIFT network file)."""
    p = Path(path)
    text = read_text(p, "component label table")
    rows = [r for r in csv.reader(io.StringIO(text), skipinitialspace=True) if any(c.strip() for c in r)]
    if not rows:
        raise InputError(f"{p}: component label table is empty")
    header = [c.strip().lower() for c in rows[0]]
    if "ic" in header:
        return _from_csv(rows, header, p, n_components)
    return _from_network_file(rows, p, n_components)


def default_labels(path: Path | None, n_components: int) -> ComponentLabels | None:
    """The configured table, else NeuroMark_1's domains when there are 53 components."""
    if path is not None:
        return read_component_labels(path, n_components)
    return neuromark_labels() if n_components == N_COMPONENTS else None


def resolve_components(
    spec: Sequence[int | str] | None, table: ComponentLabels | None, n_components: int
) -> list[int] | None:
    """1-based component numbers for ``gift.components``: numbers as given; a name selects
    every component of that domain or with that label (in component order)."""
    if spec is None:
        return None
    out: list[int] = []
    for item in spec:
        if isinstance(item, int):
            picked = [item]
        else:
            if table is None:
                raise InputError(
                    f"field gift.components: {item!r} is a name, but no gift.component_labels table is "
                    f"configured (and n_components is not NeuroMark_1's 53)"
                )
            picked = sorted(
                {c for c, d in table.domains.items() if d == item}
                | {c for c, lab in table.labels.items() if lab == item}
            )
            if not picked:
                known = sorted(set(table.domains.values()) | set(table.labels.values()))
                raise InputError(
                    f"field gift.components: no domain or label {item!r} in {table.source} (known: {', '.join(known[:20])})"
                )
        for c in picked:
            if not 1 <= c <= n_components:
                raise InputError(f"field gift.components: component {c} outside 1..{n_components}")
            if c in out:
                raise InputError(f"field gift.components: component {c} selected twice (by {item!r})")
            out.append(c)
    return out
