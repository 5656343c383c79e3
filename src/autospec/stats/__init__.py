"""Group statistics on recorded spectra.

- :mod:`.paper_tests`: the seed paper's t-tests (singular values or epochs as samples), labelled
  ``paper``; reproduced for comparison, not valid inference.
- :mod:`.inference`: Welch t, label-permutation tests and Hedges' g on independent samples.
- :mod:`.families`: test tables with seeds or subjects as samples, including the recommended
  test, :func:`subject_maxt_tests` (max-|t| permutation over every weight × epoch × summary of
  the per-subject spectra; FWER-adjusted; covariates by Freedman–Lane).
- :mod:`.maxt`, :mod:`.classifier`, :mod:`.covariates`: the max-statistic permutation test, the
  cross-validated classifier test and the covariate design.
- :mod:`.group_spectra`: group spectra recomputed from per-subject gradients (label permutation,
  size-matched subsets).
- :mod:`.multiple`: Benjamini–Hochberg FDR. :mod:`.calibration`: false-positive rate and power,
  and the measured calibration table that figure captions quote.

See docs/statistics.md for assumptions and scope.
"""

from .calibration import calibration_table, caption, clopper_pearson, load_calibration, lookup, write_calibration
from .classifier import CVResult, cv_permutation_test
from .covariates import CovariateError, covariate_columns, design_columns
from .families import (
    CELL_SUMMARIES,
    MAXT_SUMMARIES,
    seed_tests,
    subject_cv_test,
    subject_features,
    subject_maxt_tests,
    subject_tests,
)
from .inference import compare_two_groups, hedges_g, permutation_pvalues
from .maxt import MaxTResult, maxt_test
from .multiple import add_bh_columns, bh_adjust, bh_reject
from .paper_tests import LABEL as PAPER_LABEL
from .paper_tests import paper_index_tests, paper_step_tests
from .recommended import FAMILIES, RECOMMENDED_TEST, FamilyInfo
from .summaries import SUMMARIES, drop_rank_zero, group_pairs, normalise_by_group_size, spectrum_summaries, summarise

__all__ = [
    "CELL_SUMMARIES",
    "FAMILIES",
    "MAXT_SUMMARIES",
    "PAPER_LABEL",
    "RECOMMENDED_TEST",
    "SUMMARIES",
    "CVResult",
    "CovariateError",
    "FamilyInfo",
    "MaxTResult",
    "add_bh_columns",
    "bh_adjust",
    "bh_reject",
    "calibration_table",
    "caption",
    "clopper_pearson",
    "compare_two_groups",
    "covariate_columns",
    "cv_permutation_test",
    "design_columns",
    "drop_rank_zero",
    "group_pairs",
    "hedges_g",
    "load_calibration",
    "lookup",
    "maxt_test",
    "normalise_by_group_size",
    "paper_index_tests",
    "paper_step_tests",
    "permutation_pvalues",
    "seed_tests",
    "spectrum_summaries",
    "subject_cv_test",
    "subject_features",
    "subject_maxt_tests",
    "subject_tests",
    "summarise",
    "write_calibration",
]
