"""t-tests, one-way ANOVA (classic and Welch), and the two tests made for resampled ML scores."""

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
    check_level,
    essentially_constant,
    paired_differences,
    spread_problem,
)
from crucible_dagster.bench.effect_size import (
    cles_normal,
    hedges_correction,
    noncentral_t_ci,
    standardized_difference,
)
from crucible_dagster.bench.result import NAN, TestResult, overflow_guarded


def _t_p_value(t: float, df: float, alternative: str) -> float:
    if alternative == "two-sided":
        return float(2 * stats.t.sf(abs(t), df))
    if alternative == "greater":
        return float(stats.t.sf(t, df))
    return float(stats.t.cdf(t, df))


def welch_df(s1: float, s2: float, n1: int, n2: int) -> float:
    """Welch-Satterthwaite df for the squared standard errors s1 = v1/n1, s2 = v2/n2, written
    as shares of their sum so that no square passes ±1.8e308 (Python's ``**`` would raise)."""
    total = s1 + s2
    if not (total > 0 and math.isfinite(total)):
        return NAN
    f1, f2 = s1 / total, s2 / total
    return 1 / (f1 * f1 / (n1 - 1) + f2 * f2 / (n2 - 1))


@overflow_guarded("ttest")
def ttest(
    x: Any,
    y: Any,
    *,
    equal_var: bool = False,
    alternative: str = "two-sided",
    confidence_level: float = 0.95,
) -> TestResult:
    """Welch's t-test (default) or Student's; difference and CI are for mean(x) − mean(y)."""
    a, b = as_sample(x, "x", 2), as_sample(y, "y", 2)
    check_alternative(alternative)
    check_level(confidence_level)
    n1, n2 = a.size, b.size
    m1, m2 = float(a.mean()), float(b.mean())
    v1, v2 = float(a.var(ddof=1)), float(b.var(ddof=1))
    diff = m1 - m2
    result = TestResult(
        test="ttest",
        method="Student" if equal_var else "Welch",
        alternative=alternative,
        estimate=diff,
        confidence_level=confidence_level,
        n=(n1, n2),
        extra={"mean_x": m1, "mean_y": m2, "var_x": v1, "var_y": v2},
    )
    pooled = ((n1 - 1) * v1 + (n2 - 1) * v2) / (n1 + n2 - 2)
    se, df = _two_sample_se_df(v1, v2, n1, n2, pooled, equal_var)
    result.df = df
    reason = spread_problem(se, (m1, m2), "both groups", also=(diff,))
    if reason is not None:
        result.reason = reason
        result.estimate = diff if math.isfinite(diff) else NAN
        return result
    t = diff / se
    half = float(stats.t.ppf(1 - (1 - confidence_level) / 2, df)) * se
    result.statistic, result.p_value, result.ci = (
        t,
        _t_p_value(t, df, alternative),
        (diff - half, diff + half),
    )
    if not essentially_constant(math.sqrt(pooled), m1, m2):
        _cohens_d_family(result, diff, math.sqrt(pooled), (n1, n2), (m1, m2), confidence_level)
    return result


def _two_sample_se_df(
    v1: float, v2: float, n1: int, n2: int, pooled: float, equal_var: bool
) -> tuple[float, float]:
    """Standard error of mean(x) − mean(y) and its df: pooled for Student's, Welch-Satterthwaite
    otherwise (NaN df when there is no spread, rather than a division by zero)."""
    if equal_var:
        return math.sqrt(pooled * (1 / n1 + 1 / n2)), float(n1 + n2 - 2)
    se = math.sqrt(v1 / n1 + v2 / n2)
    return se, (welch_df(v1 / n1, v2 / n2, n1, n2) if se > 0 else NAN)


def _cohens_d_family(
    result: TestResult,
    diff: float,
    pooled_sd: float,
    n: tuple[int, int],
    means: tuple[float, float],
    confidence_level: float,
) -> None:
    """Cohen's d on the pooled SD (noncentral-t CI), with Hedges' g and the CLES beside it:
    readers ask for all three, and each is derived from the same d so they cannot disagree."""
    n1, n2 = n
    d = standardized_difference(diff, pooled_sd, n1, n2, confidence_level, scale=means)
    j = hedges_correction(n1 + n2 - 2)
    result.effect_size, result.effect_size_name, result.effect_size_ci = (
        d.estimate,
        "cohens_d",
        d.ci,
    )
    result.extra.update(
        hedges_g=d.estimate * j,
        hedges_g_ci_low=d.ci[0] * j,
        hedges_g_ci_high=d.ci[1] * j,
        cles=cles_normal(d.estimate).estimate,
        cles_normal=cles_normal(d.estimate).estimate,
    )


def _difference_t_result(
    test: str,
    method: str,
    mean: float,
    n: tuple[int, ...],
    alternative: str,
    confidence_level: float,
) -> TestResult:
    """The result of a t on the mean of differences (df = number of differences − 1): the
    paired t and the corrected resampled t are the same test but for their standard error."""
    return TestResult(
        test=test,
        method=method,
        alternative=alternative,
        estimate=mean,
        df=float(n[0] - 1),
        confidence_level=confidence_level,
        n=n,
        extra={},
    )


def _fill_mean_t(result: TestResult, mean: float, se: float, df: int, level: float) -> float:
    """t = mean / se, its p-value (``result``'s alternative) and the t interval around
    ``mean``, written into ``result``; returns t for the effect sizes built on it."""
    t = mean / se
    half = float(stats.t.ppf(1 - (1 - level) / 2, df)) * se
    result.statistic, result.p_value, result.ci = (
        t,
        _t_p_value(t, df, result.alternative),
        (mean - half, mean + half),
    )
    return t


@overflow_guarded("paired_ttest")
def paired_ttest(
    x: Any, y: Any, *, alternative: str = "two-sided", confidence_level: float = 0.95
) -> TestResult:
    """Paired t on d = x − y; effect size d_z = mean(d)/sd(d)."""
    a, b = as_pairs(x, y)
    check_alternative(alternative)
    check_level(confidence_level)
    d = paired_differences(a, b)
    n = d.size
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    result = _difference_t_result(
        "paired_ttest", "paired t", mean, (n, n), alternative, confidence_level
    )
    result.extra.update(mean_difference=mean, sd_difference=sd)
    se = sd / math.sqrt(n)
    reason = spread_problem(
        se, (float(a.mean()), float(b.mean()), mean), "the differences of the pairs"
    )
    if reason is not None:
        result.reason = reason
        result.estimate = mean if math.isfinite(mean) else NAN
        return result
    t = _fill_mean_t(result, mean, se, n - 1, confidence_level)
    low, high = noncentral_t_ci(t, n - 1, confidence_level)
    result.effect_size, result.effect_size_name = mean / sd, "d_z"
    result.effect_size_ci = (low / math.sqrt(n), high / math.sqrt(n))
    return result


def _anova_sums(groups: list[np.ndarray]) -> tuple[float, float, float]:
    # Centre on the grand mean first: the textbook Σx² − (Σx)²/N loses every digit on NIST data.
    shift = float(np.concatenate(groups).mean())
    centred = [g - shift for g in groups]
    grand = float(np.concatenate(centred).mean())
    means = [float(g.mean()) for g in centred]
    ss_between = float(sum(g.size * (m - grand) ** 2 for g, m in zip(centred, means, strict=True)))
    ss_within = float(sum(np.sum((g - m) ** 2) for g, m in zip(centred, means, strict=True)))
    return ss_between, ss_within, ss_between + ss_within


@overflow_guarded("anova")
def anova(groups: Sequence[Any], names: Sequence[str] | None = None) -> TestResult:
    """Classic one-way ANOVA with η², ω² and the residual SD."""
    data = as_groups(groups, 2, 1, names)
    k, n_total = len(data), sum(g.size for g in data)
    df_b, df_w = k - 1, n_total - k
    if df_w <= 0:
        raise BenchDataError(
            f"ANOVA needs more observations than groups, got {n_total} in {k} groups"
        )
    ss_b, ss_w, ss_t = _anova_sums(data)
    ms_w = ss_w / df_w
    extra: dict[str, Any] = {
        "df_between": df_b,
        "df_within": df_w,
        "ss_between": ss_b,
        "ss_within": ss_w,
        "ss_total": ss_t,
        "ms_between": ss_b / df_b,
        "ms_within": ms_w,
        "residual_sd": math.sqrt(ms_w),
        "eta_squared": ss_b / ss_t if ss_t > 0 else NAN,
        "omega_squared": (ss_b - df_b * ms_w) / (ss_t + ms_w) if ss_t + ms_w > 0 else NAN,
        "group_means": [float(g.mean()) for g in data],
    }
    result = TestResult(
        test="anova",
        method="one-way ANOVA",
        df=(float(df_b), float(df_w)),
        n=tuple(g.size for g in data),
        extra=extra,
    )
    result.effect_size, result.effect_size_name = float(extra["eta_squared"]), "eta_squared"
    reason = spread_problem(
        math.sqrt(ms_w), extra["group_means"], "the values within each group", also=(ss_b,)
    )
    if reason is not None:
        result.reason = reason
        return result
    f = (ss_b / df_b) / ms_w
    result.statistic, result.p_value = f, float(stats.f.sf(f, df_b, df_w))
    return result


@overflow_guarded("welch_anova")
def welch_anova(groups: Sequence[Any], names: Sequence[str] | None = None) -> TestResult:
    """Welch's heteroscedastic one-way ANOVA (R's oneway.test(var.equal = FALSE)); classic F beside it."""
    data = as_groups(groups, 2, 2, names)
    k = len(data)
    n = np.array([g.size for g in data], dtype=float)
    means = np.array([g.mean() for g in data])
    variances = np.array([g.var(ddof=1) for g in data])
    classic = anova(data)
    extra: dict[str, Any] = {
        "classic_statistic": classic.statistic,
        "classic_p_value": classic.p_value,
        "df_between": float(k - 1),
    }
    result = TestResult(
        test="welch_anova", method="Welch one-way ANOVA", n=tuple(int(v) for v in n), extra=extra
    )
    problems = [
        spread_problem(math.sqrt(v / size), (m,), "the values of a group")
        for v, size, m in zip(variances, n, means, strict=True)
    ]
    reason = next((p for p in problems if p), None)
    if reason is not None:
        result.reason = reason + (" (Welch weights n/s²)" if "overflow" not in reason else "")
        return result
    w = n / variances
    mean_w = float(np.sum(w * means) / np.sum(w))
    a = float(np.sum(w * (means - mean_w) ** 2) / (k - 1))
    tmp = float(np.sum((1 - w / np.sum(w)) ** 2 / (n - 1)))
    f = a / (1 + 2 * (k - 2) / (k**2 - 1) * tmp)
    df2 = (k**2 - 1) / (3 * tmp)
    extra["df_within"] = df2
    result.statistic, result.df, result.p_value = (
        f,
        (float(k - 1), df2),
        float(stats.f.sf(f, k - 1, df2)),
    )
    return result


@overflow_guarded("corrected_resampled_ttest")
def corrected_resampled_ttest(
    differences: Any,
    *,
    n_train: int,
    n_test: int,
    alternative: str = "two-sided",
    confidence_level: float = 0.95,
) -> TestResult:
    """Nadeau & Bengio's corrected resampled t: var × (1/J + n_test/n_train), df = J − 1.

    ``differences`` are score_A − score_B per fold/resample; the naive paired t is reported beside it.
    """
    d = as_sample(differences, "differences", 2)
    check_alternative(alternative)
    check_level(confidence_level)
    if n_train <= 0 or n_test <= 0:
        raise BenchDataError(f"n_train and n_test must be positive, got {n_train} and {n_test}")
    j = d.size
    mean, var = float(d.mean()), float(d.var(ddof=1))
    result = _difference_t_result(
        "corrected_resampled_ttest",
        "Nadeau-Bengio corrected resampled t",
        mean,
        (j,),
        alternative,
        confidence_level,
    )
    extra = result.extra
    extra.update(mean_difference=mean, variance_ddof1=var, n_train=n_train, n_test=n_test, J=j)
    reason = spread_problem(math.sqrt(var / j), (mean,), "the score differences across resamples")
    if reason is not None:
        result.reason = reason
        extra.update(uncorrected_statistic=NAN, uncorrected_p_value=NAN)
        return result
    se = math.sqrt((1 / j + n_test / n_train) * var)
    _fill_mean_t(result, mean, se, j - 1, confidence_level)
    naive = mean / math.sqrt(var / j)
    result.effect_size, result.effect_size_name = mean / math.sqrt(var), "d_z"
    extra.update(
        uncorrected_statistic=naive, uncorrected_p_value=_t_p_value(naive, j - 1, alternative)
    )
    return result


@overflow_guarded("cv_5x2")
def cv_5x2(scores_a: Any, scores_b: Any, *, alternative: str = "two-sided") -> TestResult:
    """Dietterich's 5x2cv paired t (df 5) and Alpaydin's combined F (10, 5).

    ``scores_*`` are 5 replications x 2 folds, from the SAME five random 2-fold splits.
    The t numerator is the first fold of the first replication only, as Dietterich defines it.
    ``alternative`` applies to t; the F test is two-sided by construction (squared differences).
    The differences p and the per-replication variances s² it used are in the result.
    """
    check_alternative(alternative)
    a = np.asarray(scores_a, dtype=float)
    b = np.asarray(scores_b, dtype=float)
    if a.shape != (5, 2) or b.shape != (5, 2):
        raise BenchDataError(
            f"cv_5x2 needs 5 replications x 2 folds per model, got shapes {a.shape} and {b.shape}"
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise BenchDataError("cv_5x2: scores contain NaN or infinite values")
    p = a - b
    s2 = ((p - p.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    result = TestResult(
        test="cv_5x2",
        method="5x2cv paired t",
        df=5.0,
        n=(10,),
        estimate=float(p.mean()),
        alternative=alternative,
        extra={"differences": p.tolist(), "variances": s2.tolist(), "f_df": [10, 5]},
    )
    reason = spread_problem(
        math.sqrt(s2.mean()),
        (float(a.mean()), float(b.mean())),
        "the two models' score differences",
        also=tuple(p.ravel()),
    )
    if reason is not None:
        result.reason = reason
        result.extra.update(f_statistic=NAN, f_p_value=NAN)
        return result
    t = float(p[0, 0] / math.sqrt(s2.mean()))
    f = float((p**2).sum() / (2 * s2.sum()))
    result.statistic, result.p_value = t, _t_p_value(t, 5, alternative)
    result.extra.update(f_statistic=f, f_p_value=float(stats.f.sf(f, 10, 5)))
    return result
