"""The provenance fields every figure passes to its sidecar (one place, shared by all figure kinds)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def provenance_fields(provenance: Mapping[str, Any] | None, params: Mapping[str, Any]) -> dict[str, Any]:
    """Sidecar keyword arguments: the caller's rule/wildcards/command/config/device, params merged.

    The figure's own ``params`` come first; the caller's (e.g. from ``--params``) win on a clash.
    """
    p = dict(provenance or {})
    p["params"] = {**params, **dict(p.get("params") or {})}
    return {k: p.get(k) for k in ("rule", "wildcards", "params", "command", "config", "device")}
