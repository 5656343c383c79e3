"""Moved: the demo-cohort generator is :mod:`autospec.data.demo`.

Kept so that code written before the split (``from autospec.data.synthetic import
make_demo_cohort``) still imports; new code imports :mod:`autospec.data.demo`.
"""

from .demo.cohort import cohort_files, make_demo_cohort

__all__ = ["cohort_files", "make_demo_cohort"]
