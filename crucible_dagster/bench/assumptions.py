"""Assumption checks for automatic test selection: Shapiro-Wilk (Royston) and Levene/Brown-Forsythe."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from crucible_dagster.bench.data import BenchDataError, as_groups, as_sample, overflow_reason
from crucible_dagster.bench.result import TestResult, overflow_guarded


@overflow_guarded("shapiro")
def shapiro(x: Any) -> TestResult:
    """Shapiro-Wilk; constant data is degenerate (NaN), never silently 'normal'; n > 5000 is refused as R does.

    Values near ±1e308 overflow inside scipy (W = nan, p = 1): that is undefined with the
    overflow reason, never a p-value."""
    data = as_sample(x, "x", 3)
    result = TestResult(test="shapiro", n=(data.size,), method="Shapiro-Wilk (Royston AS R94)")
    if data.size > 5000:
        raise BenchDataError(
            f"Shapiro-Wilk is not reliable for n > 5000 (got {data.size}); use a Q-Q plot or skewness/kurtosis"
        )
    if np.all(data == data[0]):
        result.reason = "all values are identical: normality cannot be assessed"
        return result
    return _finite_or_overflow(result, stats.shapiro(data), "W")


@overflow_guarded("levene")
def levene(
    groups: Sequence[Any], center: str = "median", names: Sequence[str] | None = None
) -> TestResult:
    """Levene's test; ``center="median"`` is Brown-Forsythe (the default of car, scipy, pingouin)."""
    if center not in ("median", "mean"):
        raise BenchDataError(f"center must be median or mean, got {center!r}")
    data = as_groups(groups, 2, 2, names)
    k, n_total = len(data), sum(g.size for g in data)
    result = TestResult(
        test="levene",
        df=(float(k - 1), float(n_total - k)),
        n=tuple(g.size for g in data),
        method="Brown-Forsythe" if center == "median" else "Levene",
        extra={
            "variances": [float(g.var(ddof=1)) for g in data],
            "df_between": k - 1,
            "df_within": n_total - k,
        },
    )
    deviations = [np.abs(g - (np.median(g) if center == "median" else g.mean())) for g in data]
    if all(np.all(d == d[0]) for d in deviations) and len({float(d[0]) for d in deviations}) == 1:
        result.reason = "absolute deviations are constant: the statistic is undefined"
        return result
    return _finite_or_overflow(
        result, stats.levene(*data, center=center), "an absolute deviation's mean"
    )


def _finite_or_overflow(result: TestResult, res: Any, what: str) -> TestResult:
    """Copy scipy's statistic and p into ``result`` only when both are finite: scipy answers
    an overflow with nan (or p = 1), which must read as undefined, never as a p-value."""
    statistic, p = float(res.statistic), float(res.pvalue)
    if not (math.isfinite(statistic) and math.isfinite(p)):
        result.reason = overflow_reason(what)
        return result
    result.statistic, result.p_value = statistic, p
    return result
