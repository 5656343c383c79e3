"""The data kinds: one definition, imported by readers, commands, training and the workflow.

Kept free of heavy imports so that building the CLI parser can import it.
"""

from __future__ import annotations

#: kinds a cohort provides (FreeSurfer volumes; GIFT ICA time courses and spatial maps)
COHORT_KINDS: tuple[str, ...] = ("volumes", "timecourses", "spatialmaps")
#: kinds of the bundled non-cohort data sets
DATASET_KINDS: tuple[str, ...] = ("mnist", "sinusoid")
#: every kind a prepared dataset (``meta["kind"]``) can have
ALL_KINDS: tuple[str, ...] = COHORT_KINDS + DATASET_KINDS
#: kinds whose samples are (time, feature) series
TIME_FIRST_KINDS: tuple[str, ...] = ("timecourses", "sinusoid")
#: the cohort block a cohort kind is read from
BLOCK_OF_KIND: dict[str, str] = {"volumes": "freesurfer", "timecourses": "gift", "spatialmaps": "gift"}

#: name kept for the cohort modules and commands that say ``KINDS``
KINDS = COHORT_KINDS
