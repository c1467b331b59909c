"""Effect sizes with confidence intervals.

Conventions (see shared/bench_reference/README.md): Cohen's d uses the pooled SD (ddof=1)
and a noncentral-t CI; Hedges' g uses the exact correction J = Γ(df/2)/(√(df/2)·Γ((df−1)/2))
and g's CI is d's CI × J; Glass's Δ divides by the SD of an explicit reference (control)
group; Cliff's δ uses Feng & Cliff's asymmetric CI with the unbiased variance and a
t(n1+n2−2) quantile (effsize's default); ε² for Kruskal–Wallis is H/(n−1).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from scipy import optimize, special, stats

from crucible_dagster.bench.data import as_sample, check_level

NAN = float("nan")


def noncentral_t_ci(t_obs: float, df: float, confidence_level: float) -> tuple[float, float]:
    """Bounds on the noncentrality parameter for an observed t (inverting the noncentral t CDF)."""
    if not math.isfinite(t_obs) or df <= 0:
        return (NAN, NAN)
    upper_tail = (1 - confidence_level) / 2

    def cdf(ncp: float) -> float:
        value = float(stats.nct.cdf(t_obs, df, ncp))
        if math.isnan(value):  # scipy's nct loses precision far in the tails: the limit is 0 or 1
            return 0.0 if ncp > t_obs else 1.0
        return value

    def solve(target: float) -> float:
        step = 2.0 + abs(t_obs) / 4
        low, high = t_obs - step, t_obs + step
        while cdf(low) < target:
            step *= 2
            low = t_obs - step
        while cdf(high) > target:
            step *= 2
            high = t_obs + step
        return float(optimize.brentq(lambda ncp: cdf(ncp) - target, low, high, xtol=1e-12))

    return (solve(1 - upper_tail), solve(upper_tail))


def hedges_correction(df: float) -> float:
    """The exact small-sample correction J(df)."""
    if df <= 1:
        return NAN
    return math.exp(
        special.gammaln(df / 2) - math.log(math.sqrt(df / 2)) - special.gammaln((df - 1) / 2)
    )


def _pooled_sd(x: np.ndarray, y: np.ndarray) -> float:
    n1, n2 = x.size, y.size
    return math.sqrt(((n1 - 1) * x.var(ddof=1) + (n2 - 1) * y.var(ddof=1)) / (n1 + n2 - 2))


def standardized_difference(
    difference: float, sd: float, n1: int, n2: int, confidence_level: float
) -> tuple[float, tuple[float, float]]:
    """difference / sd with the noncentral-t CI of a two-sample design (df = n1 + n2 − 2)."""
    if sd == 0:
        return NAN, (NAN, NAN)
    value = difference / sd
    scale = math.sqrt(n1 * n2 / (n1 + n2))
    low, high = noncentral_t_ci(value * scale, n1 + n2 - 2, confidence_level)
    return float(value), (low / scale, high / scale)


def cohens_d(x: Any, y: Any, confidence_level: float = 0.95) -> tuple[float, tuple[float, float]]:
    """(d, CI) for mean(x) − mean(y) over the pooled SD; NaN when the pooled SD is 0."""
    a, b = as_sample(x, "x", 2), as_sample(y, "y", 2)
    check_level(confidence_level)
    return standardized_difference(
        float(a.mean() - b.mean()), _pooled_sd(a, b), a.size, b.size, confidence_level
    )


def hedges_g(x: Any, y: Any, confidence_level: float = 0.95) -> tuple[float, tuple[float, float]]:
    d, (low, high) = cohens_d(x, y, confidence_level)
    j = hedges_correction(len(x) + len(y) - 2)
    return d * j, (low * j, high * j)


def glass_delta(
    x: Any, y: Any, reference: Literal["x", "y"] = "y", confidence_level: float = 0.95
) -> tuple[float, tuple[float, float]]:
    """(mean(x) − mean(y)) / SD of the reference (control) group, which the caller names explicitly."""
    a, b = as_sample(x, "x", 2), as_sample(y, "y", 2)
    sd = float((b if reference == "y" else a).std(ddof=1))
    return standardized_difference(float(a.mean() - b.mean()), sd, a.size, b.size, confidence_level)


def paired_d_z(
    differences: Any, confidence_level: float = 0.95
) -> tuple[float, tuple[float, float]]:
    """d_z = mean(d) / sd(d) with a noncentral-t CI (df = n − 1)."""
    d = as_sample(differences, "differences", 2)
    sd = d.std(ddof=1)
    if sd == 0:
        return NAN, (NAN, NAN)
    dz = d.mean() / sd
    scale = math.sqrt(d.size)
    low, high = noncentral_t_ci(dz * scale, d.size - 1, confidence_level)
    return float(dz), (low / scale, high / scale)


def common_language(d: float) -> float:
    """CLES = Φ(d/√2): the chance that a random x exceeds a random y under normality."""
    return float(stats.norm.cdf(d / math.sqrt(2))) if math.isfinite(d) else NAN


def rank_biserial(u_x: float, n1: int, n2: int) -> float:
    """(U_x − U_y) / (n1·n2) = P(X>Y) − P(X<Y), signed by the order of x and y."""
    return float((2 * u_x - n1 * n2) / (n1 * n2))


def cliffs_delta(
    x: Any, y: Any, confidence_level: float = 0.95
) -> tuple[float, tuple[float, float]]:
    a, b = as_sample(x, "x", 2), as_sample(y, "y", 2)
    check_level(confidence_level)
    n1, n2 = a.size, b.size
    if n1 * n2 > 25_000_000:
        # the dominance matrix would not fit comfortably in memory; use ranks instead
        u_x = stats.mannwhitneyu(a, b, method="asymptotic").statistic
        return rank_biserial(float(u_x), n1, n2), (NAN, NAN)
    dominance = np.sign(a[:, None] - b[None, :])
    d = float(dominance.mean())
    row = dominance.mean(axis=1) - d
    col = dominance.mean(axis=0) - d
    s2 = (n2**2 * np.sum(row**2) + n1**2 * np.sum(col**2) - np.sum((dominance - d) ** 2)) / (
        n1 * n2 * (n1 - 1) * (n2 - 1)
    )
    s2 = max(float(s2), 0.0)
    z = float(stats.t.ppf(1 - (1 - confidence_level) / 2, n1 + n2 - 2))
    s = math.sqrt(s2)
    root = z * s * math.sqrt((1 - d**2) ** 2 + z**2 * s2)
    denominator = 1 - d**2 + z**2 * s2
    if denominator == 0:
        return d, (NAN, NAN)
    return d, (
        max(-1.0, (d - d**3 - root) / denominator),
        min(1.0, (d - d**3 + root) / denominator),
    )


def epsilon_squared(h: float, n: int) -> float:
    """ε² = H/(n − 1) (Tomczak & Tomczak 2014)."""
    return float(h / (n - 1)) if n > 1 and math.isfinite(h) else NAN


def two_sample_effect_sizes(
    x: Any, y: Any, confidence_level: float = 0.95, glass_reference: Literal["x", "y"] = "y"
) -> dict[str, float]:
    d, (d_low, d_high) = cohens_d(x, y, confidence_level)
    j = hedges_correction(len(x) + len(y) - 2)
    delta, (delta_low, delta_high) = glass_delta(x, y, glass_reference, confidence_level)
    return {
        "cohens_d": d,
        "cohens_d_ci_low": d_low,
        "cohens_d_ci_high": d_high,
        "hedges_g": d * j,
        "hedges_g_ci_low": d_low * j,
        "hedges_g_ci_high": d_high * j,
        "glass_delta": delta,
        "glass_delta_ci_low": delta_low,
        "glass_delta_ci_high": delta_high,
        "cles": common_language(d),
    }
