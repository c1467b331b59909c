"""Rank-based tests following R's conventions (exact vs normal choice, tie and continuity corrections)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from crucible_dagster.bench.data import (
    BenchDataError,
    as_groups,
    as_pairs,
    as_sample,
    check_alternative,
)
from crucible_dagster.bench.effect_size import cliffs_delta, epsilon_squared, rank_biserial
from crucible_dagster.bench.result import NAN, TestResult


def _has_ties(values: np.ndarray) -> bool:
    return bool(np.unique(values).size < values.size)


def mann_whitney(
    x: Any,
    y: Any,
    *,
    alternative: str = "two-sided",
    method: str = "auto",
    continuity_correction: bool = True,
) -> TestResult:
    """Mann-Whitney U of x (R's W). ``auto``: exact when both n < 50 and no ties (R's rule), else normal."""
    a, b = as_sample(x, "x", 1), as_sample(y, "y", 1)
    check_alternative(alternative)
    n1, n2 = a.size, b.size
    pooled = np.concatenate([a, b])
    ties = _has_ties(pooled)
    if method in ("auto", "approx_when_ties"):
        method = "exact" if n1 < 50 and n2 < 50 and not ties else "asymptotic"
    if method not in ("exact", "asymptotic"):
        raise BenchDataError(f"method must be auto, exact or asymptotic, got {method!r}")
    ranks = stats.rankdata(pooled)
    u_x = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2)
    u_y = n1 * n2 - u_x
    delta, (delta_low, delta_high) = (
        cliffs_delta(a, b) if n1 > 1 and n2 > 1 else (rank_biserial(u_x, n1, n2), (NAN, NAN))
    )
    extra: dict[str, Any] = {
        "u_x": u_x,
        "u_y": u_y,
        "rank_biserial": rank_biserial(u_x, n1, n2),
        "cliffs_delta": delta,
        "cliffs_delta_ci_low": delta_low,
        "cliffs_delta_ci_high": delta_high,
    }
    result = TestResult(
        test="mann_whitney",
        statistic=u_x,
        alternative=alternative,
        method=method,
        n=(n1, n2),
        effect_size=extra["rank_biserial"],
        effect_size_name="rank_biserial",
        effect_size_ci=(delta_low, delta_high),
        extra=extra,
    )
    if np.all(pooled == pooled[0]):
        result.reason = "all values are tied: the rank test has no variance (R gives p = NA)"
        extra.update(p_value_asymptotic_continuity=NAN, p_value_asymptotic_no_continuity=NAN)
        return result
    _mann_whitney_p_values(result, a, b, continuity_correction)
    return result


def _mann_whitney_p_values(
    result: TestResult, a: np.ndarray, b: np.ndarray, continuity: bool
) -> None:
    """Both asymptotic p-values (with and without continuity correction), and the exact one."""
    asymptotic = {}
    for corrected in (True, False):
        asymptotic[corrected] = float(
            stats.mannwhitneyu(
                a, b, alternative=result.alternative, method="asymptotic", use_continuity=corrected
            ).pvalue
        )
    result.extra["p_value_asymptotic_continuity"] = asymptotic[True]
    result.extra["p_value_asymptotic_no_continuity"] = asymptotic[False]
    if result.method == "exact":
        exact = stats.mannwhitneyu(a, b, alternative=result.alternative, method="exact")
        result.p_value = float(exact.pvalue)
    else:
        result.p_value = asymptotic[continuity]


def wilcoxon(
    x: Any,
    y: Any = None,
    *,
    zero_method: str = "wilcox",
    alternative: str = "two-sided",
    method: str = "auto",
    continuity_correction: bool = True,
) -> TestResult:
    """Wilcoxon signed-rank on d = x − y (or on x alone). The statistic is W⁺ (R's V).

    ``auto`` follows R: exact when n < 50 with no ties and no zeros, else the normal
    approximation with tie-corrected variance and (by default) continuity correction.
    """
    if y is None:
        d = as_sample(x, "differences", 1)
    else:
        a, b = as_pairs(x, y, 1)
        d = a - b
    check_alternative(alternative)
    if zero_method not in ("wilcox", "pratt", "zsplit"):
        raise BenchDataError(f"zero_method must be wilcox, pratt or zsplit, got {zero_method!r}")
    zeros = int(np.sum(d == 0))
    nonzero = d[d != 0]
    result = TestResult(
        test="wilcoxon",
        alternative=alternative,
        n=(d.size,),
        estimate=float(np.median(d)),
        extra={"n_nonzero": int(nonzero.size), "n_zero": zeros},
    )
    if nonzero.size == 0:
        result.reason = "every difference is zero: no difference can be tested"
        result.method = method
        return result
    w_plus, w_minus = signed_rank_sums(d, zero_method)
    ties = _has_ties(np.abs(nonzero))
    if method in ("auto", "approx_when_ties_or_zeros"):
        method = "exact" if nonzero.size < 50 and not ties and zeros == 0 else "asymptotic"
    if method not in ("exact", "asymptotic"):
        raise BenchDataError(f"method must be auto, exact or asymptotic, got {method!r}")
    result.method = method
    result.statistic = w_plus
    total = w_plus + w_minus
    result.effect_size = (w_plus - w_minus) / total if total else NAN
    result.effect_size_name = "matched_pairs_rank_biserial"
    result.extra.update(w_plus=w_plus, w_minus=w_minus, w_min=min(w_plus, w_minus))
    _wilcoxon_p_values(result, d, zero_method, alternative, continuity_correction)
    return result


def signed_rank_sums(d: np.ndarray, zero_method: str) -> tuple[float, float]:
    """W⁺ and W⁻ of the differences; zeros dropped (wilcox), ranked (pratt) or split (zsplit)."""
    ranked = d if zero_method != "wilcox" else d[d != 0]
    ranks = stats.rankdata(np.abs(ranked))
    w_plus = float(ranks[ranked > 0].sum())
    w_minus = float(ranks[ranked < 0].sum())
    if zero_method == "zsplit":
        half_zero = float(ranks[ranked == 0].sum()) / 2
        w_plus, w_minus = w_plus + half_zero, w_minus + half_zero
    return w_plus, w_minus


def _wilcoxon_p_values(
    result: TestResult, d: np.ndarray, zero_method: str, alternative: str, continuity: bool
) -> None:
    """The exact p-value, or both asymptotic ones (with and without continuity correction)."""
    if result.method == "exact":
        exact = stats.wilcoxon(d, zero_method=zero_method, alternative=alternative, method="exact")
        result.p_value = float(exact.pvalue)
        return
    for label, corrected in (("p_value_continuity", True), ("p_value_no_continuity", False)):
        asymptotic = stats.wilcoxon(
            d,
            zero_method=zero_method,
            alternative=alternative,
            method="asymptotic",
            correction=corrected,
        )
        result.extra[label] = float(asymptotic.pvalue)
    result.p_value = result.extra["p_value_continuity" if continuity else "p_value_no_continuity"]
    if math.isnan(result.p_value):
        result.reason = "the signed ranks have zero variance"


def kruskal_wallis(groups: Sequence[Any], names: Sequence[str] | None = None) -> TestResult:
    """Kruskal-Wallis H with the tie correction; ε² = H/(n − 1)."""
    data = as_groups(groups, 2, 1, names)
    n_total = sum(g.size for g in data)
    result = TestResult(
        test="kruskal_wallis",
        df=float(len(data) - 1),
        n=tuple(g.size for g in data),
        method="Kruskal-Wallis",
    )
    pooled = np.concatenate(data)
    if np.all(pooled == pooled[0]):
        result.reason = "all values are tied: H is undefined (0/0)"
        result.extra = {"epsilon_squared": NAN}
        return result
    h = float(stats.kruskal(*data).statistic)
    result.statistic, result.p_value = h, float(stats.chi2.sf(h, len(data) - 1))
    result.effect_size, result.effect_size_name = epsilon_squared(h, n_total), "epsilon_squared"
    result.extra = {"epsilon_squared": result.effect_size}
    return result


def friedman(blocks_by_treatments: Any, treatment_names: Sequence[str] | None = None) -> TestResult:
    """Friedman's test with R's tie correction; works for k = 2 treatments (scipy refuses k < 3).

    Rows are blocks (datasets, folds, seeds), columns are treatments (configurations).
    Kendall's W = χ² / (n (k − 1)).
    """
    table = np.asarray(blocks_by_treatments, dtype=float)
    if table.ndim != 2 or table.shape[0] < 2 or table.shape[1] < 2:
        raise BenchDataError(
            f"friedman needs a blocks x treatments table with at least 2 of each, got shape {table.shape}"
        )
    if not np.isfinite(table).all():
        raise BenchDataError(
            "friedman: the table contains NaN or infinite values (a block missing a treatment?)"
        )
    n, k = table.shape
    ranks = np.apply_along_axis(stats.rankdata, 1, table)
    ties = 0.0
    for row in table:
        _, counts = np.unique(row, return_counts=True)
        ties += float(np.sum(counts**3 - counts))
    denominator = n * k * (k + 1) - ties / (k - 1)
    result = TestResult(test="friedman", df=float(k - 1), n=(n, k), method="Friedman")
    result.extra = {
        "rank_sums": ranks.sum(axis=0).tolist(),
        "mean_ranks": ranks.mean(axis=0).tolist(),
    }
    if treatment_names:
        result.extra["treatments"] = list(treatment_names)
    if denominator <= 0:
        result.reason = "every block ties all treatments: the statistic is undefined"
        result.extra["kendalls_w"] = NAN
        return result
    chi2 = float(12 * np.sum((ranks.sum(axis=0) - n * (k + 1) / 2) ** 2) / denominator)
    result.statistic, result.p_value = chi2, float(stats.chi2.sf(chi2, k - 1))
    result.effect_size, result.effect_size_name = chi2 / (n * (k - 1)), "kendalls_w"
    result.extra["kendalls_w"] = result.effect_size
    return result


def mcnemar(
    b: int | None = None,
    c: int | None = None,
    *,
    table: Any = None,
    correction: bool = True,
    exact: bool = False,
) -> TestResult:
    """McNemar's test on the discordant counts b (first yes, second no) and c; table is [[a, b], [c, d]]."""
    if table is not None:
        t = np.asarray(table)
        if t.shape != (2, 2):
            raise BenchDataError(f"mcnemar needs a 2x2 table, got shape {t.shape}")
        b, c = int(t[0, 1]), int(t[1, 0])
    if b is None or c is None or b < 0 or c < 0:
        raise BenchDataError(
            f"mcnemar needs non-negative discordant counts b and c, got {b!r} and {c!r}"
        )
    n = b + c
    result = TestResult(
        test="mcnemar",
        df=1.0,
        n=(n,),
        method="exact binomial"
        if exact
        else ("chi-squared, continuity-corrected" if correction else "chi-squared"),
    )
    p_exact = float(stats.binomtest(b, n, 0.5).pvalue) if n else 1.0
    result.extra = {"b": b, "c": c, "p_value_exact_binomial": p_exact}
    if exact:
        result.statistic, result.p_value = float(min(b, c)), p_exact
        return result
    if n == 0:
        result.reason = "no discordant pairs: the chi-squared statistic is 0/0 (the exact p is 1)"
        return result
    stat = (abs(b - c) - (1 if correction else 0)) ** 2 / n if not (correction and b == c) else 0.0
    result.statistic, result.p_value = float(stat), float(stats.chi2.sf(stat, 1))
    return result
