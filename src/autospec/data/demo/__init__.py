"""Generators of the demo data: a synthetic COBRE-like cohort written exactly in the formats
the real tools write (GIFT, FreeSurfer), with a planted group effect of known size.

Readers of those formats live one level up, in :mod:`autospec.data`; nothing there imports
this package.
"""

from .cohort import cohort_config, cohort_files, make_demo_cohort
from .planted import planted_description

__all__ = ["cohort_config", "cohort_files", "make_demo_cohort", "planted_description"]
