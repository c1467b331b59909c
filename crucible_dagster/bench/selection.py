"""Choosing the test automatically, each choice written down with its reason (the decision record)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from crucible_dagster.bench.assumptions import levene, shapiro
from crucible_dagster.bench.data import paired_differences
from crucible_dagster.bench.pairwise import is_binary
from crucible_dagster.bench.settings import ComparisonSettings, Decision


def normal_enough(
    name: str, values: np.ndarray, alpha: float, decisions: list[Decision]
) -> bool | None:
    """Shapiro-Wilk at ``alpha``; None when it cannot say (n < 3, constant data, or values so
    large that W overflowed)."""
    if values.size < 3:
        decisions.append(
            Decision(f"{name}: normality not checked", f"n = {values.size} < 3", "shapiro")
        )
        return None
    result = shapiro(values[:5000])
    if not result.defined:
        decisions.append(
            Decision(f"{name}: normality undefined", result.reason or "degenerate data", "shapiro")
        )
        return None
    ok = result.p_value > alpha
    verdict = "consistent with normality" if ok else "departs from normality"
    decisions.append(
        Decision(
            f"{name}: {verdict}",
            f"Shapiro-Wilk W = {result.statistic:.4f}, p = {result.p_value:.4g} vs alpha {alpha}",
            "shapiro",
            result.p_value,
        )
    )
    return ok


def choose_pairwise_test(
    a: str,
    b: str,
    x: np.ndarray,
    y: np.ndarray,
    settings: ComparisonSettings,
    decisions: list[Decision],
) -> str:
    """The automatic choice for one pair, with its reasons appended to ``decisions``."""
    pair = _Pair(a, b, x, y)
    if settings.design in ("paired", "blocked"):
        return _paired_choice(pair, settings, decisions)
    return _independent_choice(pair, settings, decisions)


@dataclass(frozen=True)
class _Pair:
    """The two groups being compared, by name and values: both designs' choosers take the
    same four things, so they travel together instead of as one long argument list each."""

    a: str
    b: str
    x: np.ndarray
    y: np.ndarray

    @property
    def name(self) -> str:
        return f"{self.a} vs {self.b}"


def _paired_choice(pair: _Pair, settings: ComparisonSettings, decisions: list[Decision]) -> str:
    name, x, y = pair.name, pair.x, pair.y
    if is_binary(x) and is_binary(y):
        decisions.append(
            Decision(
                f"{name}: mcnemar",
                "paired design, each sample right (1) or wrong (0) under both: McNemar's "
                "test on the discordant samples (exact binomial p below 25 of them)",
                "design",
            )
        )
        return "mcnemar"
    if settings.n_train and settings.n_test:
        decisions.append(
            Decision(
                f"{name}: corrected_resampled_ttest",
                f"scores come from resampled train/test splits "
                f"(n_train={settings.n_train}, n_test={settings.n_test}); "
                "the naive paired t ignores the overlap between training sets and is "
                "anti-conservative (Nadeau & Bengio 2003)",
                "design",
            )
        )
        return "corrected_resampled_ttest"
    # noise-level differences are zeros and ties, as the paired tests will see them
    differences = paired_differences(x, y)
    normal = normal_enough(f"{name} differences", differences, settings.alpha, decisions)
    # the t only where normality was checked and held; the reason names the test chosen
    choice = "paired_ttest" if normal else "wilcoxon"
    decisions.append(
        Decision(
            f"{name}: {choice}",
            "paired design; "
            + (
                "differences look normal: paired t"
                if normal
                else "differences depart from normality: Wilcoxon signed-rank"
                if normal is False
                else "normality of the differences cannot be checked: Wilcoxon signed-rank"
            ),
            "shapiro",
        )
    )
    return choice


def _independent_choice(
    pair: _Pair, settings: ComparisonSettings, decisions: list[Decision]
) -> str:
    name, a, b, x, y = pair.name, pair.a, pair.b, pair.x, pair.y
    normal_a = normal_enough(a, x, settings.alpha, decisions)
    normal_b = normal_enough(b, y, settings.alpha, decisions)
    if normal_a is False or normal_b is False:
        decisions.append(
            Decision(
                f"{name}: mann_whitney",
                "independent design; a group departs from normality",
                "shapiro",
            )
        )
        return "mann_whitney"
    equal = levene([x, y]) if x.size > 1 and y.size > 1 else None
    detail = (
        f"Levene (Brown-Forsythe) p = {equal.p_value:.4g}"
        if equal is not None and equal.defined
        else "variance check undefined"
    )
    decisions.append(
        Decision(
            f"{name}: ttest (Welch)",
            "independent design, "
            + (
                "normal enough"
                if normal_a and normal_b
                else "normality not checked (too few values, constant, or too large to compute)"
            )
            + f"; Welch's t, which does not assume equal variances ({detail})",
            "levene",
            equal.p_value if equal is not None and equal.defined else None,
        )
    )
    return "ttest"


def _blocked_omnibus(data: Mapping[str, np.ndarray], decisions: list[Decision]) -> str:
    """Cochran's Q when every value is 0 or 1 (right or wrong), else Friedman."""
    if all(is_binary(v) for v in data.values()):
        decisions.append(
            Decision(
                "omnibus: cochran_q",
                "k configurations scored right (1) or wrong (0) on the same blocks: Cochran's Q "
                "(chi-squared p, exact permutation p beside it) with pairwise McNemar tests",
                "design",
            )
        )
        return "cochran_q"
    decisions.append(
        Decision(
            "omnibus: friedman",
            "k configurations measured on the same blocks: Friedman test with post-hoc "
            "pairwise comparisons (Demšar 2006)",
            "design",
        )
    )
    return "friedman"


def choose_omnibus(
    data: Mapping[str, np.ndarray], settings: ComparisonSettings, decisions: list[Decision]
) -> str:
    """The omnibus test for three or more groups, with its reasons appended to ``decisions``."""
    if settings.design in ("blocked", "paired"):
        return _blocked_omnibus(data, decisions)
    normal = [
        normal_enough(name, values, settings.alpha, decisions) for name, values in data.items()
    ]
    if any(n is False for n in normal):
        decisions.append(
            Decision(
                "omnibus: kruskal_wallis",
                "independent groups, at least one departs from normality",
                "shapiro",
            )
        )
        return "kruskal_wallis"
    equal = levene(list(data.values())) if all(v.size > 1 for v in data.values()) else None
    if equal is not None and equal.defined and equal.p_value <= settings.alpha:
        decisions.append(
            Decision(
                "omnibus: welch_anova",
                f"normal enough but variances differ (Levene p = {equal.p_value:.4g})",
                "levene",
                equal.p_value,
            )
        )
        return "welch_anova"
    detail = (
        f"Levene p = {equal.p_value:.4g}"
        if equal is not None and equal.defined
        else "variance check undefined"
    )
    decisions.append(
        Decision(
            "omnibus: anova",
            f"normal enough and variances compatible ({detail})",
            "levene",
            equal.p_value if equal is not None and equal.defined else None,
        )
    )
    return "anova"
