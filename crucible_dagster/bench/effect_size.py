"""Effect sizes with confidence intervals.

Conventions (see shared/bench_reference/README.md): Cohen's d uses the pooled SD (ddof=1)
and a noncentral-t CI; Hedges' g uses the exact correction J = Γ(df/2)/(√(df/2)·Γ((df−1)/2))
and g's CI is d's CI × J; Glass's Δ divides by the SD of an explicit reference (control)
group; Cliff's δ uses Feng & Cliff's asymmetric CI with the unbiased variance and a
t(n1+n2−2) quantile (effsize's default); the rank-biserial correlation's CI is Fisher's z
with R effectsize's standard errors; ε² for Kruskal–Wallis is H/(n−1).

Every function returns an ``EffectSize`` (estimate, CI, name, method, reason). It also
unpacks as ``estimate, (ci_low, ci_high)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import optimize, special, stats

from crucible_dagster.bench.data import (
    as_pairs,
    as_sample,
    check_level,
    spread_problem,
)

NAN = float("nan")
NO_CI = (NAN, NAN)


@dataclass(frozen=True)
class EffectSize:
    """One effect size: its value, its CI and the method each came from."""

    name: str
    estimate: float
    ci: tuple[float, float] = NO_CI
    confidence_level: float | None = None
    method: str = ""
    ci_method: str = ""
    reason: str | None = None  #: why the estimate or the CI is NaN, when it is
    extra: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Any]:
        yield self.estimate
        yield self.ci

    def to_dict(self) -> dict[str, Any]:
        return {
            self.name: self.estimate,
            f"{self.name}_ci_low": self.ci[0],
            f"{self.name}_ci_high": self.ci[1],
            f"{self.name}_method": self.method,
            f"{self.name}_ci_method": self.ci_method,
            **({"reason": self.reason} if self.reason else {}),
            **self.extra,
        }


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
    with np.errstate(over="ignore", invalid="ignore"):  # an infinite SD is reported, not warned
        return math.sqrt(((n1 - 1) * x.var(ddof=1) + (n2 - 1) * y.var(ddof=1)) / (n1 + n2 - 2))


NONCENTRAL_T = "noncentral t"


def standardized_difference(
    difference: float,
    sd: float,
    n1: int,
    n2: int,
    confidence_level: float,
    *,
    scale: tuple[float, ...] = (),
    name: str = "cohens_d",
    method: str = "difference / pooled SD",
) -> EffectSize:
    """difference / sd with the noncentral-t CI of a two-sample design (df = n1 + n2 − 2);
    NaN when ``sd`` is essentially zero next to the means in ``scale``, or when a value
    overflowed (an infinite SD would give a d of 0.0 that looks real)."""
    reason = spread_problem(sd, scale, "the values", also=(difference,))
    if reason is not None:
        if "overflow" not in reason:
            reason += " (division by a zero SD)"
        return EffectSize(name, NAN, NO_CI, confidence_level, method, NONCENTRAL_T, reason)
    value = difference / sd
    root = math.sqrt(n1 * n2 / (n1 + n2))
    low, high = noncentral_t_ci(value * root, n1 + n2 - 2, confidence_level)
    return EffectSize(
        name, float(value), (low / root, high / root), confidence_level, method, NONCENTRAL_T
    )


def cohens_d(x: Any, y: Any, *, confidence_level: float = 0.95) -> EffectSize:
    """Cohen's d for mean(x) − mean(y) over the pooled SD (ddof 1)."""
    a, b = as_sample(x, "x", 2), as_sample(y, "y", 2)
    check_level(confidence_level)
    m1, m2 = float(a.mean()), float(b.mean())
    return standardized_difference(
        m1 - m2, _pooled_sd(a, b), a.size, b.size, confidence_level, scale=(m1, m2)
    )


def hedges_g(x: Any, y: Any, *, confidence_level: float = 0.95) -> EffectSize:
    """Hedges' g = d·J with the exact J(df); its CI is d's CI × J."""
    d = cohens_d(x, y, confidence_level=confidence_level)
    j = hedges_correction(len(x) + len(y) - 2)
    return EffectSize(
        "hedges_g",
        d.estimate * j,
        (d.ci[0] * j, d.ci[1] * j),
        confidence_level,
        "Cohen's d × exact J(df)",
        NONCENTRAL_T,
        d.reason,
    )


def glass_delta(
    x: Any, y: Any, *, reference: Literal["x", "y"] = "y", confidence_level: float = 0.95
) -> EffectSize:
    """(mean(x) − mean(y)) / SD of the reference (control) group, which the caller names explicitly."""
    a, b = as_sample(x, "x", 2), as_sample(y, "y", 2)
    check_level(confidence_level)
    control = b if reference == "y" else a
    m1, m2 = float(a.mean()), float(b.mean())
    return standardized_difference(
        m1 - m2,
        float(control.std(ddof=1)),
        a.size,
        b.size,
        confidence_level,
        scale=(float(control.mean()),),
        name="glass_delta",
        method=f"difference / SD of {reference}",
    )


def paired_d_z(differences: Any, *, confidence_level: float = 0.95) -> EffectSize:
    """d_z = mean(d) / sd(d) with a noncentral-t CI (df = n − 1)."""
    d = as_sample(differences, "differences", 2)
    check_level(confidence_level)
    with np.errstate(over="ignore", invalid="ignore"):
        sd, mean = float(d.std(ddof=1)), float(d.mean())
    reason = spread_problem(sd, (mean,), "the differences")
    if reason is not None:
        return EffectSize("d_z", NAN, NO_CI, confidence_level, "mean(d) / sd(d)", "", reason)
    dz = mean / sd
    root = math.sqrt(d.size)
    low, high = noncentral_t_ci(dz * root, d.size - 1, confidence_level)
    return EffectSize(
        "d_z", dz, (low / root, high / root), confidence_level, "mean(d) / sd(d)", NONCENTRAL_T
    )


def cles_normal(d: float) -> EffectSize:
    """McGraw & Wong's common-language effect size Φ(d/√2): under normality with equal
    variances, the chance that a random x exceeds a random y."""
    value = float(stats.norm.cdf(d / math.sqrt(2))) if math.isfinite(d) else NAN
    reason = None if math.isfinite(value) else "d is undefined"
    return EffectSize("cles_normal", value, method="Φ(d/√2) (McGraw & Wong 1992)", reason=reason)


def probability_of_superiority(x: Any, y: Any, *, paired: bool = False) -> EffectSize:
    """The distribution-free common-language effect size P(X > Y) + ½·P(X = Y), counted over
    all n_x·n_y pairs of values. For paired data this is the all-pairs form that common
    statistics packages report; the within-pair share P(x_i > y_i) + ½·P(x_i = y_i) is in
    ``extra["within_pairs"]``."""
    a, b = as_pairs(x, y, 1) if paired else (as_sample(x, "x", 1), as_sample(y, "y", 1))
    ranks = stats.rankdata(np.concatenate([a, b]))
    u_x = float(ranks[: a.size].sum() - a.size * (a.size + 1) / 2)
    value = u_x / (a.size * b.size)
    extra: dict[str, Any] = {}
    method = "P(X > Y) + ½·P(X = Y) over all pairs"
    if paired:
        diff = a - b
        extra["within_pairs"] = float(np.mean(diff > 0) + 0.5 * np.mean(diff == 0))
        method += " (paired design)"
    return EffectSize("probability_of_superiority", value, method=method, extra=extra)


def rank_biserial(u_x: float, n1: int, n2: int) -> float:
    """(U_x − U_y) / (n1·n2) = P(X>Y) − P(X<Y), signed by the order of x and y."""
    return float((2 * u_x - n1 * n2) / (n1 * n2))


def rank_biserial_ci(
    r: float, n1: int, n2: int | None = None, *, confidence_level: float = 0.95
) -> tuple[float, float]:
    """Fisher-z CI of a rank-biserial correlation as R's effectsize computes it: SE of atanh(r)
    √((n1+n2+1)/(3·n1·n2)) for two samples, √((2n³+3n²+n)/6)/((n²+n)/2) for n nonzero
    paired differences (``n2`` None)."""
    check_level(confidence_level)
    if not math.isfinite(r) or abs(r) >= 1 or n1 < 1 or (n2 is not None and n2 < 1):
        return NO_CI
    if n2 is None:
        se = math.sqrt((2 * n1**3 + 3 * n1**2 + n1) / 6) / ((n1**2 + n1) / 2)
    else:
        se = math.sqrt((n1 + n2 + 1) / (3 * n1 * n2))
    z = float(stats.norm.ppf(1 - (1 - confidence_level) / 2))
    centre = math.atanh(r)
    return (math.tanh(centre - z * se), math.tanh(centre + z * se))


FISHER_Z = "Fisher z (R effectsize)"


def cliffs_delta(x: Any, y: Any, *, confidence_level: float = 0.95) -> EffectSize:
    """Cliff's δ = P(X>Y) − P(X<Y) with Feng & Cliff's asymmetric CI (effsize's default)."""
    a, b = as_sample(x, "x", 2), as_sample(y, "y", 2)
    check_level(confidence_level)
    n1, n2 = a.size, b.size
    method = "P(X>Y) − P(X<Y)"
    if n1 * n2 > 25_000_000:
        # the dominance matrix would not fit comfortably in memory; use ranks instead
        u_x = stats.mannwhitneyu(a, b, method="asymptotic").statistic
        reason = "too many pairs for the Feng & Cliff variance: no CI"
        value = rank_biserial(float(u_x), n1, n2)
        return EffectSize("cliffs_delta", value, NO_CI, confidence_level, method, "", reason)
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
    feng_cliff = "Feng & Cliff, t(n1+n2−2)"
    if denominator == 0:
        reason = "complete dominance with no variance: no CI"
        return EffectSize("cliffs_delta", d, NO_CI, confidence_level, method, feng_cliff, reason)
    ci = (
        max(-1.0, (d - d**3 - root) / denominator),
        min(1.0, (d - d**3 + root) / denominator),
    )
    return EffectSize("cliffs_delta", d, ci, confidence_level, method, feng_cliff)


def epsilon_squared(h: float, n: int) -> EffectSize:
    """ε² = H/(n − 1) (Tomczak & Tomczak 2014)."""
    value = float(h / (n - 1)) if n > 1 and math.isfinite(h) else NAN
    reason = None if math.isfinite(value) else "H is undefined"
    return EffectSize("epsilon_squared", value, method="H/(n − 1)", reason=reason)


def two_sample_effect_sizes(
    x: Any, y: Any, *, confidence_level: float = 0.95, glass_reference: Literal["x", "y"] = "y"
) -> dict[str, Any]:
    """Every standardized and common-language effect size of two independent samples, by name."""
    d = cohens_d(x, y, confidence_level=confidence_level)
    out: dict[str, Any] = {}
    for effect in (
        d,
        hedges_g(x, y, confidence_level=confidence_level),
        glass_delta(x, y, reference=glass_reference, confidence_level=confidence_level),
        cles_normal(d.estimate),
        probability_of_superiority(x, y),
    ):
        out.update(effect.to_dict())
    out["cles"] = out["cles_normal"]  # the name earlier versions used for Φ(d/√2)
    return out
