"""Group statistics on recorded spectra.

- :mod:`.paper_tests`: the seed paper's t-tests (singular values or epochs as samples), labelled
  ``paper``; reproduced for comparison, not valid inference.
- :mod:`.inference`: Welch t, label-permutation tests and Hedges' g with independent units as
  samples: seeds (one summary per run and group) or subjects (one summary of σ(A_iᵀΔ_i) each).
- :mod:`.multiple`: Benjamini–Hochberg FDR, and the calibration table (false-positive rate and
  power per test family).

See docs/statistics.md for assumptions and scope.
"""

from .inference import (
    SUMMARIES,
    compare_two_groups,
    hedges_g,
    permutation_pvalues,
    seed_tests,
    spectrum_summaries,
    subject_tests,
)
from .multiple import add_bh_columns, bh_adjust, bh_reject, calibration_table, markdown_table, write_calibration
from .paper_tests import LABEL as PAPER_LABEL
from .paper_tests import paper_index_tests, paper_step_tests

__all__ = [
    "PAPER_LABEL",
    "SUMMARIES",
    "add_bh_columns",
    "bh_adjust",
    "bh_reject",
    "calibration_table",
    "compare_two_groups",
    "hedges_g",
    "markdown_table",
    "paper_index_tests",
    "paper_step_tests",
    "permutation_pvalues",
    "seed_tests",
    "spectrum_summaries",
    "subject_tests",
    "write_calibration",
]
