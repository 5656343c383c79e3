"""Registry of the test families: names, what they test, whether they are valid inference.

Ids are those of the calibration (``benchmarks/calibration.py``, ``calibration_table.json``).
``table`` and ``p_column`` say where ``autospec group-stats`` writes a family's p-values (None:
computed by the calibration only, e.g. from per-subject gradient matrices that training runs do
not store). ``marks`` says how a figure turns them into marked epochs: ``fwer`` (already adjusted
over every layer and epoch), ``bh`` (Benjamini–Hochberg over the figure's tests) or ``none``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FamilyInfo:
    """One test family."""

    id: str
    label: str
    unit: str  # what one calibration count is: "replicate" (one decision per data set) or "test"
    valid: bool  # valid inference when trained without the labels (auto-encoding)
    table: str | None = None  # group-stats table stem
    p_column: str | None = None
    marks: str = "none"
    quantity: str = ""  # what the table's ``diff`` column is (figure axis label)


#: the test the figures and docs recommend (measured: benchmarks/results/calibration.md)
RECOMMENDED_TEST = "subject_maxt"

PAPER_NOTE = "paper's test, not valid inference"

_FAMILIES = (
    FamilyInfo(
        "paper_step",
        f"paper view (a): per-epoch t-test, σ's as samples ({PAPER_NOTE})",
        "test",
        False,
        "paper_step_tests",
        "p",
        "bh",
        "mean σ(G_a) − mean σ(G_b) of one run",
    ),
    FamilyInfo(
        "paper_index",
        f"paper view (b): per-index t-test, epochs as samples ({PAPER_NOTE})",
        "test",
        False,
        "paper_index_tests",
        "p",
        "none",
    ),
    FamilyInfo("paper_step_matched", "view (a) on size-matched group gradients", "test", False),
    FamilyInfo("paper_index_matched", "view (b) on size-matched group gradients", "test", False),
    FamilyInfo("paper_step_pergroup", "view (a) on group-mean gradients (σ · N / N_g)", "test", False),
    FamilyInfo("paper_index_pergroup", "view (b) on group-mean gradients (σ · N / N_g)", "test", False),
    FamilyInfo(
        "seed_welch",
        "seed-level Welch t (group spectra, size-normalised)",
        "test",
        False,
        "seed_tests",
        "p_welch",
        "bh",
        "mean over seeds of the group-summary difference",
    ),
    FamilyInfo(
        "seed_welch_bh",
        "seed-level Welch t, any BH rejection per data set",
        "replicate",
        False,
        "seed_tests",
        "p_welch",
        "bh",
        "mean over seeds of the group-summary difference",
    ),
    FamilyInfo("seed_matched_welch", "seed-level Welch t on size-matched group gradients", "test", False),
    FamilyInfo("group_perm", "label permutation, group spectra recomputed per relabeling (per cell)", "test", True),
    FamilyInfo("group_perm_maxt", "label permutation, group spectra recomputed (max over cells)", "replicate", True),
    FamilyInfo(
        "subject_welch",
        "subject-level Welch t per layer × epoch (uncorrected)",
        "test",
        True,
        "subject_tests",
        "p_welch",
        "bh",
        "mean over subjects of the per-subject summary, a − b",
    ),
    FamilyInfo(
        "subject_bh",
        "subject-level Welch t, any BH rejection per data set",
        "replicate",
        True,
        "subject_tests",
        "p_welch",
        "bh",
        "mean over subjects of the per-subject summary, a − b",
    ),
    FamilyInfo(
        "subject_maxt",
        "subject-level max-|t| permutation test (FWER over layers × epochs × summaries)",
        "replicate",
        True,
        "subject_maxt_tests",
        "p_fwer",
        "fwer",
        "mean over subjects of the per-subject summary, a − b",
    ),
    FamilyInfo(
        "subject_maxt_cov",
        "subject-level max-|t|, adjusted for age and sex (Freedman–Lane)",
        "replicate",
        True,
    ),
    FamilyInfo(
        "subject_maxt_seedavg",
        "subject-level max-|t| permutation, per-subject summaries averaged over seeds",
        "replicate",
        True,
    ),
    FamilyInfo(
        "subject_cv",
        "cross-validated ridge classifier on per-subject spectral features (permutation)",
        "replicate",
        True,
        "subject_cv_test",
        "p_perm",
    ),
    FamilyInfo(
        "subject_maxt_retrain", "subject-level max-|t|, null from retraining under permuted labels", "replicate", True
    ),
    FamilyInfo("input_welch", "raw inputs: Welch t per input feature (uncorrected)", "test", True),
    FamilyInfo("input_bh", "raw inputs: Welch t per feature, any BH rejection per data set", "replicate", True),
    FamilyInfo("input_maxt", "raw inputs: max-|t| permutation over input features", "replicate", True),
    FamilyInfo("input_cv", "raw inputs: cross-validated ridge classifier (permutation)", "replicate", True),
    FamilyInfo(
        "input_spectrum_maxt",
        "raw inputs: max-|t| over log σ_k of each subject's (time × component) matrix",
        "replicate",
        True,
    ),
)

FAMILIES: dict[str, FamilyInfo] = {t.id: t for t in _FAMILIES}

#: figure marking choice (``autospec plot --test``) -> test id quoted in the caption
MARKING_TESTS = {
    "subject_maxt_tests": "subject_maxt",
    "subject_tests": "subject_bh",
    "seed_tests": "seed_welch_bh",
    "paper_step_tests": "paper_step",
}
