"""Two one-sided tests (TOST) for equivalence, paired and independent (Schuirmann 1987).

The difference is equivalent to zero within the bounds ``(low, high)`` when both one-sided
nulls, difference ≤ low and difference ≥ high, are rejected at ``alpha``: the TOST p-value is
the larger of the two, and the matching interval is the 1 − 2α CI of the difference.
"""

from __future__ import annotations

import math
from typing import Any

from scipy import stats

from crucible_dagster.bench.data import (
    BenchDataError,
    as_pairs,
    as_sample,
    paired_differences,
    spread_problem,
)
from crucible_dagster.bench.parametric import welch_df
from crucible_dagster.bench.result import TestResult, overflow_guarded


@overflow_guarded("tost")
def tost(
    x: Any,
    y: Any = None,
    *,
    low: float,
    high: float,
    paired: bool = False,
    equal_var: bool = False,
    alpha: float = 0.05,
) -> TestResult:
    """TOST of mean(x) − mean(y) (or of the paired differences, or of x alone when ``y`` is
    None) against the equivalence bounds ``low < high``; Welch's t unless ``equal_var``."""
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise BenchDataError(f"equivalence bounds need low < high, got {low!r} and {high!r}")
    if not 0 < alpha < 0.5:
        raise BenchDataError(f"alpha must be between 0 and 0.5, got {alpha!r}")
    estimate, se, df, n, method, centres = _difference(x, y, paired, equal_var)
    result = TestResult(
        test="tost",
        method=f"TOST, {method}",
        df=df,
        estimate=estimate,
        confidence_level=1 - 2 * alpha,
        n=n,
        extra={"low": low, "high": high, "alpha": alpha},
    )
    reason = spread_problem(se, centres, "the data", also=(estimate,))
    if reason is not None:
        result.reason = reason
        result.extra["equivalent"] = None
        return result
    t_low, t_high = (estimate - low) / se, (estimate - high) / se
    p_low, p_high = float(stats.t.sf(t_low, df)), float(stats.t.cdf(t_high, df))
    half = float(stats.t.ppf(1 - alpha, df)) * se
    binding_low = p_low >= p_high
    result.statistic = t_low if binding_low else t_high
    result.p_value = max(p_low, p_high)
    result.ci = (estimate - half, estimate + half)
    result.extra.update(
        statistic_lower=t_low,
        p_value_lower=p_low,
        statistic_upper=t_high,
        p_value_upper=p_high,
        equivalent=bool(result.p_value < alpha),
    )
    return result


def _difference(
    x: Any, y: Any, paired: bool, equal_var: bool
) -> tuple[float, float, float, tuple[int, ...], str, tuple[float, ...]]:
    """The estimate, its standard error, df, sizes, the t's name and the means it scales by."""
    if y is None or paired:
        if y is None:
            d = as_sample(x, "x", 2)
            centres: tuple[float, ...] = (float(d.mean()),)
        else:
            a, b = as_pairs(x, y)
            d = paired_differences(a, b)
            centres = (float(a.mean()), float(b.mean()), float(d.mean()))
        n = d.size
        return (
            float(d.mean()),
            float(d.std(ddof=1)) / math.sqrt(n),
            float(n - 1),
            (n,) if y is None else (n, n),
            "paired t" if y is not None else "one-sample t",
            centres,
        )
    a, b = as_sample(x, "x", 2), as_sample(y, "y", 2)
    n1, n2 = a.size, b.size
    v1, v2 = float(a.var(ddof=1)), float(b.var(ddof=1))
    if equal_var:
        pooled = ((n1 - 1) * v1 + (n2 - 1) * v2) / (n1 + n2 - 2)
        se, df, method = math.sqrt(pooled * (1 / n1 + 1 / n2)), float(n1 + n2 - 2), "Student t"
    else:
        se = math.sqrt(v1 / n1 + v2 / n2)
        df = welch_df(v1 / n1, v2 / n2, n1, n2) if se > 0 else math.nan
        method = "Welch t"
    means = (float(a.mean()), float(b.mean()))
    return means[0] - means[1], se, df, (n1, n2), method, means
