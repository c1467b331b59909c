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
    overflow_reason,
    paired_differences,
)
from crucible_dagster.bench.effect_size import (
    FISHER_Z,
    cliffs_delta,
    epsilon_squared,
    probability_of_superiority,
    rank_biserial,
    rank_biserial_ci,
)
from crucible_dagster.bench.result import NAN, TestResult, overflow_guarded


def _has_ties(values: np.ndarray) -> bool:
    return bool(np.unique(values).size < values.size)


@overflow_guarded("mann_whitney")
def mann_whitney(
    x: Any,
    y: Any,
    *,
    alternative: str = "two-sided",
    method: str = "auto",
    continuity_correction: bool = True,
    confidence_level: float = 0.95,
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
    r = rank_biserial(u_x, n1, n2)
    r_ci = rank_biserial_ci(r, n1, n2, confidence_level=confidence_level)
    extra: dict[str, Any] = {"u_x": u_x, "u_y": u_y, "rank_biserial_ci_method": FISHER_Z}
    if n1 > 1 and n2 > 1:
        extra.update(cliffs_delta(a, b, confidence_level=confidence_level).to_dict())
    else:
        extra.update(cliffs_delta=r, cliffs_delta_ci_low=NAN, cliffs_delta_ci_high=NAN)
    extra.update(probability_of_superiority(a, b).to_dict())
    extra.pop("reason", None)
    result = TestResult(
        test="mann_whitney",
        statistic=u_x,
        alternative=alternative,
        method=method,
        n=(n1, n2),
        effect_size=r,
        effect_size_name="rank_biserial",
        effect_size_ci=r_ci,
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


@overflow_guarded("wilcoxon")
def wilcoxon(
    x: Any,
    y: Any = None,
    *,
    zero_method: str = "wilcox",
    alternative: str = "two-sided",
    method: str = "auto",
    continuity_correction: bool = True,
    confidence_level: float = 0.95,
) -> TestResult:
    """Wilcoxon signed-rank on d = x − y (or on x alone). The statistic is W⁺ (R's V).

    ``auto`` follows R: exact when n < 50 with no ties and no zeros, else the normal
    approximation with tie-corrected variance and (by default) continuity correction.
    ``exact`` is the exact null distribution of W⁺: of the untied ranks when there are no
    ties, else the exact permutation distribution of the tied (mid-)ranks, as current scipy
    computes it for small samples (``method="permutation"`` asks for that one always). Both
    asymptotic p-values (with and without continuity correction) are always reported.

    Given x and y, differences within 8·ε of their pair's scale are zeros, and differences
    that agree to that tolerance are ties (``data.paired_differences``): floating-point noise
    is never ranked as a real difference.
    """
    d = _wilcoxon_differences(x, y)
    check_alternative(alternative)
    if not np.isfinite(d).all():
        return TestResult(
            test="wilcoxon",
            alternative=alternative,
            n=(d.size,),
            reason=overflow_reason("a difference x − y"),
        )
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
    result.method = _wilcoxon_method(method, nonzero, zeros, zero_method)
    result.statistic = w_plus
    _wilcoxon_effect_size(result, w_plus, w_minus, int(nonzero.size), confidence_level)
    _wilcoxon_p_values(result, d, zero_method, alternative, continuity_correction)
    return result


def _wilcoxon_differences(x: Any, y: Any) -> np.ndarray:
    """The differences to rank: x itself when y is None, else x − y with float noise made zero
    (``data.paired_differences``), so rounding is never ranked as a real difference."""
    if y is None:
        return as_sample(x, "differences", 1)
    a, b = as_pairs(x, y, 1)
    return paired_differences(a, b)


def _wilcoxon_method(method: str, nonzero: np.ndarray, zeros: int, zero_method: str) -> str:
    """Resolve ``auto`` by R's rule, and turn ``exact`` into ``permutation`` when there are ties
    (or ranked zeros): the untied exact distribution would silently assume there are none."""
    ties = _has_ties(np.abs(nonzero))
    if method in ("auto", "approx_when_ties_or_zeros"):
        method = "exact" if nonzero.size < 50 and not ties and zeros == 0 else "asymptotic"
    if method not in ("exact", "asymptotic", "permutation"):
        raise BenchDataError(
            f"method must be auto, exact, permutation or asymptotic, got {method!r}"
        )
    if method == "exact" and (ties or (zeros and zero_method != "wilcox")):
        method = "permutation"  # exact, but of the tied ranks: never assume there are none
    return method


def _wilcoxon_effect_size(
    result: TestResult, w_plus: float, w_minus: float, n_nonzero: int, confidence_level: float
) -> None:
    """Matched-pairs rank-biserial r = (W⁺ − W⁻)/(W⁺ + W⁻) with its Fisher-z CI, and the rank
    sums it came from, so a reader can check r against the statistic."""
    total = w_plus + w_minus
    r = (w_plus - w_minus) / total if total else NAN
    result.effect_size, result.effect_size_name = r, "matched_pairs_rank_biserial"
    result.effect_size_ci = rank_biserial_ci(r, n_nonzero, confidence_level=confidence_level)
    result.extra.update(
        w_plus=w_plus,
        w_minus=w_minus,
        w_min=min(w_plus, w_minus),
        matched_pairs_rank_biserial_ci_method=FISHER_Z,
    )


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
    """Both asymptotic p-values (with and without continuity correction), and the exact one
    when the method is exact or permutation."""
    for label, corrected in (("p_value_continuity", True), ("p_value_no_continuity", False)):
        asymptotic = stats.wilcoxon(
            d,
            zero_method=zero_method,
            alternative=alternative,
            method="asymptotic",
            correction=corrected,
        )
        result.extra[label] = float(asymptotic.pvalue)
    if result.method == "exact":
        exact = stats.wilcoxon(d, zero_method=zero_method, alternative=alternative, method="exact")
        result.p_value = float(exact.pvalue)
        return
    if result.method == "permutation":
        result.p_value = signed_rank_permutation_p(d, zero_method, alternative)
        result.extra["p_value_permutation"] = result.p_value
        return
    result.p_value = result.extra["p_value_continuity" if continuity else "p_value_no_continuity"]
    if math.isnan(result.p_value):
        result.reason = "the signed ranks have zero variance"


def signed_rank_permutation_p(d: np.ndarray, zero_method: str, alternative: str) -> float:
    """Exact p-value of W⁺ over all 2ⁿ sign assignments of the (tied, mid-) ranks.

    Mid-ranks are multiples of ½, so 2·rank is an integer and the null distribution of 2·W⁺
    is counted exactly by a subset-sum recursion (no sampling, any n). Two-sided is
    2·min(P(W⁺ ≤ w), P(W⁺ ≥ w)), capped at 1, as scipy's permutation test reports it.
    """
    ranked = d if zero_method != "wilcox" else d[d != 0]
    doubled = np.rint(2 * stats.rankdata(np.abs(ranked))).astype(np.int64)
    signs = np.sign(ranked)
    movable = doubled[signs != 0]  # zeros are ranked (pratt, zsplit) but never change sign
    # zsplit adds half of each zero's rank to W⁺ whatever the signs: a fixed shift
    fixed = int(doubled[signs == 0].sum()) // 2 if zero_method == "zsplit" else 0
    observed = int(doubled[signs > 0].sum()) + fixed
    counts = np.zeros(int(movable.sum()) + 1, dtype=np.float64)
    counts[0] = 1.0
    for r in movable:
        counts[r:] = counts[r:] + counts[: counts.size - r].copy()
    probabilities = counts / counts.sum()
    value = observed - fixed
    p_less = float(probabilities[: value + 1].sum())
    p_greater = float(probabilities[value:].sum())
    if alternative == "less":
        return min(p_less, 1.0)
    if alternative == "greater":
        return min(p_greater, 1.0)
    return min(1.0, 2 * min(p_less, p_greater))


@overflow_guarded("kruskal_wallis")
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
    result.effect_size = epsilon_squared(h, n_total).estimate
    result.effect_size_name = "epsilon_squared"
    result.extra = {"epsilon_squared": result.effect_size}
    return result


@overflow_guarded("friedman")
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
    b: Any = None,
    c: int | None = None,
    *,
    table: Any = None,
    correction: bool = True,
    exact: bool = False,
) -> TestResult:
    """McNemar's test: ``mcnemar(b, c)`` on the discordant counts (b: first yes, second no),
    or ``mcnemar(table)`` / ``mcnemar(table=...)`` on the 2x2 table [[a, b], [c, d]].

    Both chi-squared forms are always reported (``statistic_corrected``/``p_value_corrected``
    with Edwards' continuity correction, ``statistic_uncorrected``/``p_value_uncorrected``)
    beside the exact binomial p; ``correction`` and ``exact`` choose which is ``p_value``.
    """
    b, c = _discordant_counts(b, c, table)
    n = b + c
    result = TestResult(test="mcnemar", df=1.0, n=(n,), method=_mcnemar_method(correction, exact))
    p_exact = float(stats.binomtest(b, n, 0.5).pvalue) if n else 1.0
    result.extra = {"b": b, "c": c, "p_value_exact_binomial": p_exact}
    result.extra.update(_mcnemar_chi_squared(b, c))
    if exact:
        result.statistic, result.p_value = float(min(b, c)), p_exact
        return result
    if n == 0:
        result.reason = "no discordant pairs: the chi-squared statistic is 0/0 (the exact p is 1)"
        return result
    kind = "corrected" if correction else "uncorrected"
    result.statistic = result.extra[f"statistic_{kind}"]
    result.p_value = result.extra[f"p_value_{kind}"]
    return result


def _discordant_counts(b: Any, c: Any, table: Any) -> tuple[int, int]:
    """b and c from either call form (a 2x2 table passed first or as ``table=`` wins), refused
    with one message when missing or negative: a count can never be below zero."""
    if table is None and c is None and b is not None and np.ndim(b) == 2:
        table, b = b, None
    if table is not None:
        t = np.asarray(table)
        if t.shape != (2, 2):
            raise BenchDataError(f"mcnemar needs a 2x2 table, got shape {t.shape}")
        b, c = int(t[0, 1]), int(t[1, 0])
    if b is None or c is None or b < 0 or c < 0:
        raise BenchDataError(
            f"mcnemar needs non-negative discordant counts b and c, got {b!r} and {c!r}"
        )
    return int(b), int(c)


def _mcnemar_method(correction: bool, exact: bool) -> str:
    """The name of the form that ``p_value`` reports, so the record says which one was chosen."""
    if exact:
        return "exact binomial"
    return "chi-squared, continuity-corrected" if correction else "chi-squared"


def _mcnemar_chi_squared(b: int, c: int) -> dict[str, float]:
    """Both chi-squared forms (Edwards-corrected and not) on df 1; NaN when there are no
    discordant pairs, where the statistic is 0/0 rather than 0."""
    n = b + c
    if n == 0:
        return {
            "statistic_corrected": NAN,
            "p_value_corrected": NAN,
            "statistic_uncorrected": NAN,
            "p_value_uncorrected": NAN,
        }
    corrected = (max(abs(b - c) - 1, 0)) ** 2 / n
    uncorrected = (b - c) ** 2 / n
    return {
        "statistic_corrected": float(corrected),
        "p_value_corrected": float(stats.chi2.sf(corrected, 1)),
        "statistic_uncorrected": float(uncorrected),
        "p_value_uncorrected": float(stats.chi2.sf(uncorrected, 1)),
    }
