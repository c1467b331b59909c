"""What a comparison is asked to do (design, tests, alpha...) and the record of why a test was chosen.

Designs: ``independent`` (different samples), ``paired`` (two groups measured on the same
blocks: folds, seeds, examples) and ``blocked`` (k groups x n blocks, Demšar's setting).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

Design = Literal["independent", "paired", "blocked"]
PAIRWISE_TESTS = (
    "ttest",
    "paired_ttest",
    "mann_whitney",
    "wilcoxon",
    "bootstrap",
    "corrected_resampled_ttest",
    "cv_5x2",
)
OMNIBUS_TESTS = ("anova", "welch_anova", "kruskal_wallis", "friedman", "cochran_q")
PAIRED_ONLY = ("paired_ttest", "wilcoxon", "corrected_resampled_ttest", "cv_5x2", "mcnemar")


@dataclass
class Decision:
    """One line of the decision record: what was decided, why, and the check behind it."""

    decision: str
    reason: str
    check: str | None = None
    p_value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Every field, in order: the record's line is the dataclass, with nothing to keep in step."""
        return asdict(self)


@dataclass
class ComparisonSettings:
    design: Design = "independent"
    tests: Sequence[str] | None = None
    alpha: float = 0.05
    confidence_level: float = 0.95
    correction: str = "holm"
    control: str | None = None
    n_resamples: int = 10_000
    seed: int | None = None
    n_train: int | None = None
    n_test: int | None = None
    alternative: str = "two-sided"
