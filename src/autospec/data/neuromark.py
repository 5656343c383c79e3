"""The NeuroMark_1 template's 53 intrinsic components in 7 functional domains.

Components are numbered 1..53 in template order (the order of GIFT's output columns for a
NeuroMark_1 run). Domains: sub-cortical (SC), auditory (AU), sensorimotor (SM), visual (VI),
cognitive control (CC), default mode (DM), cerebellar (CB).
"""

from __future__ import annotations

N_COMPONENTS = 53

#: domain -> (first, last) component number, 1-based inclusive
DOMAIN_RANGES: dict[str, tuple[int, int]] = {
    "SC": (1, 5),
    "AU": (6, 7),
    "SM": (8, 16),
    "VI": (17, 25),
    "CC": (26, 42),
    "DM": (43, 49),
    "CB": (50, 53),
}

DOMAIN_NAMES: dict[str, str] = {
    "SC": "sub-cortical",
    "AU": "auditory",
    "SM": "sensorimotor",
    "VI": "visual",
    "CC": "cognitive control",
    "DM": "default mode",
    "CB": "cerebellar",
}


def domain_components(domain: str) -> list[int]:
    """1-based component numbers of ``domain``."""
    lo, hi = DOMAIN_RANGES[domain]
    return list(range(lo, hi + 1))


def component_domains() -> list[str]:
    """Domain code of each component, index 0 = component 1."""
    return [d for d, (lo, hi) in DOMAIN_RANGES.items() for _ in range(lo, hi + 1)]


assert len(component_domains()) == N_COMPONENTS
