"""Power analysis for t-tests with the noncentral t, counting both rejection tails (pwr, statsmodels).

R's ``power.t.test`` (strict=FALSE) counts one tail; the two differ below 1e-6 in power.
``n_for_power`` returns the unrounded n; round it up per group.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from scipy import optimize, stats

from crucible_dagster.bench.data import check_alternative

Design = Literal["two-sample", "paired", "one-sample"]


def _df_ncp(effect_size: float, n: float, design: Design) -> tuple[float, float]:
    if design == "two-sample":
        return 2 * n - 2, effect_size * math.sqrt(n / 2)
    return n - 1, effect_size * math.sqrt(n)


def power_ttest(
    effect_size: float,
    n: float,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    design: Design = "two-sample",
) -> float:
    """Power to detect a standardized effect ``effect_size`` with ``n`` per group (or pairs)."""
    check_alternative(alternative)
    df, ncp = _df_ncp(effect_size, n, design)
    if df <= 0:
        return float("nan")
    if alternative == "two-sided":
        crit = stats.t.ppf(1 - alpha / 2, df)
        return float(stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp))
    if alternative == "greater":
        return float(stats.nct.sf(stats.t.ppf(1 - alpha, df), df, ncp))
    return float(stats.nct.cdf(stats.t.ppf(alpha, df), df, ncp))


def _solve_increasing(
    power_at: Callable[[float], float], target: float, low: float, high: float, limit: float
) -> float:
    """The point where an increasing power curve reaches ``target``: double ``high`` until it does, then bisect."""
    if power_at(low) >= target:
        return low
    while power_at(high) < target:
        high *= 2
        if high > limit:
            return float("inf")
    return float(optimize.brentq(lambda v: power_at(v) - target, low, high, xtol=1e-10))


def n_for_power(
    effect_size: float,
    power: float = 0.8,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    design: Design = "two-sample",
) -> float:
    """Smallest (unrounded) n per group reaching ``power``; ``math.ceil`` it to plan."""
    if effect_size == 0 or not math.isfinite(effect_size):
        return float("inf")
    d = abs(effect_size) if alternative != "less" else -abs(effect_size)
    # n = 2 is the smallest n with a defined t distribution in every design
    return _solve_increasing(
        lambda n: power_ttest(d, n, alpha, alternative, design), power, 2.0, 4.0, 1e9
    )


def detectable_effect(
    n: float,
    power: float = 0.8,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    design: Design = "two-sample",
) -> float:
    """The smallest standardized effect detectable with ``n`` per group at ``power``."""
    df, _ = _df_ncp(1.0, n, design)
    if df <= 0:
        return float("nan")
    sign = -1.0 if alternative == "less" else 1.0
    effect = _solve_increasing(
        lambda d: power_ttest(sign * d, n, alpha, alternative, design), power, 1e-9, 1.0, 1e6
    )
    return effect if math.isfinite(effect) else float("nan")
