"""Running one named test on one pair of groups, and turning its result into a comparison row."""

from __future__ import annotations

import math

import numpy as np

from crucible_dagster.bench.data import BenchDataError, paired_differences
from crucible_dagster.bench.nonparametric import mann_whitney, mcnemar, wilcoxon
from crucible_dagster.bench.parametric import (
    corrected_resampled_ttest,
    cv_5x2,
    paired_ttest,
    ttest,
)
from crucible_dagster.bench.power import detectable_effect
from crucible_dagster.bench.resampling import bootstrap_difference
from crucible_dagster.bench.result import NAN, TestResult
from crucible_dagster.bench.rows import ComparisonRow
from crucible_dagster.bench.settings import PAIRWISE_TESTS, ComparisonSettings, Design

#: below this many discordant pairs the chi-squared approximation is poor: exact binomial p
MCNEMAR_EXACT_BELOW = 25


def is_binary(values: np.ndarray) -> bool:
    """Every value is 0 or 1 (correct or not): paired data for McNemar's test."""
    return bool(values.size) and bool(np.isin(values, (0.0, 1.0)).all())


def paired_correctness(x: np.ndarray, y: np.ndarray, level: float) -> TestResult:
    """McNemar on the discordant samples, with the difference in the share correct and its
    Wald interval for paired proportions (Agresti 2002, 10.1.1):
    var = [(b + c) - (b - c)^2 / n] / n^2."""
    from scipy import stats

    n = int(x.size)
    b = int(np.sum((x == 1) & (y == 0)))
    c = int(np.sum((x == 0) & (y == 1)))
    result = mcnemar(b, c, exact=b + c < MCNEMAR_EXACT_BELOW)
    result.n = (n,)
    result.estimate = (b - c) / n
    z = float(stats.norm.ppf(0.5 + level / 2))
    half = z * math.sqrt(max((b + c) - (b - c) ** 2 / n, 0)) / n
    result.ci = (result.estimate - half, result.estimate + half)
    return result


def run_pairwise(
    test: str, x: np.ndarray, y: np.ndarray, settings: ComparisonSettings
) -> TestResult:
    """``test`` on ``x - y``; raises BenchDataError when the data cannot take that test."""
    level, alternative = settings.confidence_level, settings.alternative
    if test == "ttest":
        return ttest(x, y, alternative=alternative, confidence_level=level)
    if test == "paired_ttest":
        return paired_ttest(x, y, alternative=alternative, confidence_level=level)
    if test == "mann_whitney":
        return mann_whitney(x, y, alternative=alternative, confidence_level=level)
    if test == "mcnemar":
        if not (is_binary(x) and is_binary(y)) or x.size != y.size:
            raise BenchDataError(
                "mcnemar needs paired 0/1 outcomes (one per sample in both groups)"
            )
        return paired_correctness(x, y, level)
    if test == "wilcoxon":
        return wilcoxon(x, y, alternative=alternative, confidence_level=level)
    if test == "bootstrap":
        return bootstrap_difference(
            x,
            y,
            paired=settings.design != "independent",
            confidence_level=level,
            n_resamples=settings.n_resamples,
            seed=settings.seed,
        )
    if test == "corrected_resampled_ttest":
        return _corrected_resampled(x, y, settings)
    if test == "cv_5x2":
        return cv_5x2(
            np.reshape(x, (5, 2)) if x.size == 10 else x,
            np.reshape(y, (5, 2)) if y.size == 10 else y,
            alternative=alternative,
        )
    raise BenchDataError(f"unknown test {test!r}; pairwise tests: {', '.join(PAIRWISE_TESTS)}")


def _corrected_resampled(x: np.ndarray, y: np.ndarray, settings: ComparisonSettings) -> TestResult:
    if not (settings.n_train and settings.n_test):
        raise BenchDataError(
            "corrected_resampled_ttest needs n_train and n_test (the sizes of each training and test split)"
        )
    if x.size != y.size:
        raise BenchDataError(
            f"corrected_resampled_ttest needs one score per split for both groups, got {x.size} and {y.size}"
        )
    return corrected_resampled_ttest(
        paired_differences(
            x, y
        ),  # noise-level differences are zeros and ties, as in every paired test
        n_train=settings.n_train,
        n_test=settings.n_test,
        alternative=settings.alternative,
        confidence_level=settings.confidence_level,
    )


ROW_EXTRAS = (
    "uncorrected_statistic",
    "uncorrected_p_value",
    "cliffs_delta",
    "hedges_g",
    "u_x",
    "w_plus",
    "jackknife_acceleration",  # BCa's acceleration and bias correction, for a bootstrap row
    "bias_correction_z0",
    "b",  # McNemar's discordant counts and its exact binomial p, whichever p the row reports
    "c",
    "p_value_exact_binomial",
)


def _power_note(n_a: int, n_b: int, design: Design, alpha: float) -> tuple[float, str]:
    """The smallest standardized effect detectable at 80% power, and a sentence saying so."""
    n_min = min(n for n in (n_a, n_b) if n) if any((n_a, n_b)) else 0
    paired = design != "independent"
    mde = (
        detectable_effect(n_min, 0.8, alpha, design="paired" if paired else "two-sample")
        if n_min >= 3
        else NAN
    )
    note = (
        f"with n = {n_min}{' pairs' if paired else ' per group'}, the smallest standardized "
        f"effect detectable at 80% power (alpha {alpha}) is {mde:.2f}"
        if math.isfinite(mde)
        else "too few observations for a power estimate"
    )
    return mde, note


def pair_row(a: str, b: str, result: TestResult, design: Design, alpha: float) -> ComparisonRow:
    """The typed row for ``a - b`` from one test's result, with its power note."""
    if len(result.n) == 1:  # one value per pair (differences): both groups have n observations
        n_a = n_b = result.n[0]
    else:
        n_a, n_b = ((*result.n, 0, 0))[:2] if result.n else (0, 0)
    mde, power_note = _power_note(n_a, n_b, design, alpha)
    ci = result.ci or (NAN, NAN)
    effect_ci = result.effect_size_ci or (NAN, NAN)
    return ComparisonRow(
        group_a=a,
        group_b=b,
        test=result.test,
        method=result.method,
        statistic=result.statistic,
        df=list(result.df) if isinstance(result.df, tuple) else result.df,
        p_value=result.p_value,
        estimate=result.estimate if result.estimate is not None else NAN,
        ci_low=ci[0],
        ci_high=ci[1],
        effect_size_name=result.effect_size_name,
        effect_size=result.effect_size if result.effect_size is not None else NAN,
        effect_size_ci_low=effect_ci[0],
        effect_size_ci_high=effect_ci[1],
        n_a=n_a,
        n_b=n_b,
        min_detectable_effect=mde,
        power_note=power_note,
        reason=result.reason,
        extra={k: result.extra[k] for k in ROW_EXTRAS if k in result.extra},
    )
