"""Power analysis for t-tests with the noncentral t.

Two-sided power counts both rejection tails by default (pwr, statsmodels, and R's
``power.t.test(strict = TRUE)``); ``strict=False`` follows R's default ``power.t.test``
convention, where only the tail in the direction of the effect counts. The two differ by
the far tail's probability (below 1e-6 for any useful power). ``n_for_power`` returns both
the exact (unrounded) n and the n to plan with (rounded up, per group or pairs).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from scipy import optimize, stats

from crucible_dagster.bench.data import check_alternative

Design = Literal["two-sample", "paired", "one-sample"]


@dataclass(frozen=True)
class SampleSize:
    """The n a power analysis asks for: ``exact`` as solved, ``n`` rounded up to plan with."""

    exact: float
    n: float  #: ``ceil(exact)`` (inf when no n reaches the power)
    power: float  #: the power at ``n``
    design: str
    strict: bool

    def __float__(self) -> float:
        return self.exact

    def to_dict(self) -> dict[str, float | str | bool]:
        return {
            "n_exact": self.exact,
            "n": self.n,
            "power_at_n": self.power,
            "design": self.design,
            "strict": self.strict,
        }


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
    *,
    strict: bool = True,
) -> float:
    """Power to detect a standardized effect ``effect_size`` with ``n`` per group (or pairs).

    ``strict=False``: for a two-sided test, only the rejection tail on the side of the effect
    counts (R's ``power.t.test`` default)."""
    check_alternative(alternative)
    df, ncp = _df_ncp(effect_size, n, design)
    if df <= 0:
        return float("nan")
    # A lower tail P(T <= -c; ncp) is taken as the upper tail P(T >= c; -ncp): the same number,
    # but scipy 1.17's nct.cdf returns NaN deep in the far tail (e.g. c=1.98, df=99, ncp=10)
    # where nct.sf does not.
    if alternative == "two-sided":
        crit = stats.t.ppf(1 - alpha / 2, df)
        upper, lower = float(stats.nct.sf(crit, df, ncp)), float(stats.nct.sf(crit, df, -ncp))
        if strict:
            return upper + lower
        return upper if effect_size >= 0 else lower
    if alternative == "greater":
        return float(stats.nct.sf(stats.t.ppf(1 - alpha, df), df, ncp))
    return float(stats.nct.sf(-stats.t.ppf(alpha, df), df, -ncp))


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
    *,
    strict: bool = True,
) -> SampleSize:
    """The smallest n per group (or pairs) reaching ``power``: exact and rounded up."""
    if effect_size == 0 or not math.isfinite(effect_size):
        return SampleSize(math.inf, math.inf, float("nan"), design, strict)
    d = abs(effect_size) if alternative != "less" else -abs(effect_size)

    def power_at(n: float) -> float:
        return power_ttest(d, n, alpha, alternative, design, strict=strict)

    # n = 2 is the smallest n with a defined t distribution in every design
    exact = _solve_increasing(power_at, power, 2.0, 4.0, 1e9)
    rounded = float(math.ceil(exact - 1e-9)) if math.isfinite(exact) else math.inf
    return SampleSize(
        exact,
        rounded,
        power_at(rounded) if math.isfinite(rounded) else float("nan"),
        design,
        strict,
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
