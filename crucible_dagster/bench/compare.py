"""Compare named groups: automatic test selection with a decision record, post-hoc pairs, corrections.

Designs: ``independent`` (different samples), ``paired`` (two groups measured on the same
blocks: folds, seeds, examples) and ``blocked`` (k groups x n blocks, Demšar's setting).
Every comparison row is ``group_a − group_b``: with a ``control``, every other group minus
the control; otherwise every pair in the declared order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from crucible_dagster.bench.assumptions import levene, shapiro
from crucible_dagster.bench.data import BenchDataError, as_sample
from crucible_dagster.bench.multiple import adjust_p_values
from crucible_dagster.bench.nonparametric import (
    friedman,
    kruskal_wallis,
    mann_whitney,
    mcnemar,
    wilcoxon,
)
from crucible_dagster.bench.parametric import (
    anova,
    corrected_resampled_ttest,
    cv_5x2,
    paired_ttest,
    ttest,
    welch_anova,
)
from crucible_dagster.bench.power import detectable_effect
from crucible_dagster.bench.resampling import bootstrap_difference
from crucible_dagster.bench.result import NAN, TestResult
from crucible_dagster.bench.rows import ComparisonRow, OmnibusRow

Design = Literal["independent", "paired", "blocked"]
PAIRWISE_TESTS = (
    "ttest",
    "paired_ttest",
    "mann_whitney",
    "wilcoxon",
    "bootstrap",
    "corrected_resampled_ttest",
    "cv_5x2",
)
OMNIBUS_TESTS = ("anova", "welch_anova", "kruskal_wallis", "friedman")
PAIRED_ONLY = ("paired_ttest", "wilcoxon", "corrected_resampled_ttest", "cv_5x2", "mcnemar")


@dataclass
class Decision:
    decision: str
    reason: str
    check: str | None = None
    p_value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "reason": self.reason,
            "check": self.check,
            "p_value": self.p_value,
        }


@dataclass
class ComparisonSettings:
    design: Design = "independent"
    tests: Sequence[str] | None = None
    alpha: float = 0.05
    confidence_level: float = 0.95
    correction: str = "holm"
    control: str | None = None
    n_resamples: int = 10_000
    seed: int | None = None
    n_train: int | None = None
    n_test: int | None = None
    alternative: str = "two-sided"


@dataclass
class Comparison:
    groups: list[str]
    design: Design
    rows: list[ComparisonRow] = field(default_factory=list)
    omnibus: list[OmnibusRow] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: ComparisonSettings = field(default_factory=ComparisonSettings)

    def to_dict(self) -> dict[str, Any]:
        s = self.settings
        return {
            "design": self.design,
            "groups": self.groups,
            "difference": "group_a - group_b"
            + (
                f" (each group minus control {s.control!r})"
                if s.control
                else " (pairs in declared order)"
            ),
            "alpha": s.alpha,
            "confidence_level": s.confidence_level,
            "correction": s.correction,
            "control": s.control,
            "summary": self.summary,
            "omnibus": [o.to_dict() for o in self.omnibus],
            "comparisons": [r.to_dict() for r in self.rows],
            "decisions": [d.to_dict() for d in self.decisions],
            "tests_run": sorted({r.test for r in self.rows} | {o.test for o in self.omnibus}),
        }


def describe_sample(values: np.ndarray, confidence_level: float) -> dict[str, Any]:
    from scipy import stats

    n = int(values.size)
    mean = float(values.mean()) if n else NAN
    sd = float(values.std(ddof=1)) if n > 1 else NAN
    if n > 1 and sd > 0:
        half = float(stats.t.ppf(1 - (1 - confidence_level) / 2, n - 1)) * sd / math.sqrt(n)
        ci = [mean - half, mean + half]
    else:
        ci = [NAN, NAN]
    return {"n": n, "mean": mean, "sd": sd, "ci_low": ci[0], "ci_high": ci[1]}


def _normal_enough(
    name: str, values: np.ndarray, alpha: float, decisions: list[Decision]
) -> bool | None:
    """Shapiro-Wilk at ``alpha``; None when it cannot say (n < 3 or constant data)."""
    if values.size < 3:
        decisions.append(
            Decision(f"{name}: normality not checked", f"n = {values.size} < 3", "shapiro")
        )
        return None
    result = shapiro(values[:5000])
    if not result.defined:
        decisions.append(
            Decision(f"{name}: normality undefined", result.reason or "degenerate data", "shapiro")
        )
        return None
    ok = result.p_value > alpha
    verdict = "consistent with normality" if ok else "departs from normality"
    decisions.append(
        Decision(
            f"{name}: {verdict}",
            f"Shapiro-Wilk W = {result.statistic:.4f}, p = {result.p_value:.4g} vs alpha {alpha}",
            "shapiro",
            result.p_value,
        )
    )
    return ok


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


def choose_pairwise_test(
    a: str,
    b: str,
    x: np.ndarray,
    y: np.ndarray,
    settings: ComparisonSettings,
    decisions: list[Decision],
) -> str:
    """The automatic choice for one pair, with its reasons appended to ``decisions``."""
    pair = f"{a} vs {b}"
    if settings.design in ("paired", "blocked"):
        if is_binary(x) and is_binary(y):
            decisions.append(
                Decision(
                    f"{pair}: mcnemar",
                    "paired design, each sample right (1) or wrong (0) under both: McNemar's "
                    "test on the discordant samples (exact binomial p below 25 of them)",
                    "design",
                )
            )
            return "mcnemar"
        if settings.n_train and settings.n_test:
            decisions.append(
                Decision(
                    f"{pair}: corrected_resampled_ttest",
                    f"scores come from resampled train/test splits "
                    f"(n_train={settings.n_train}, n_test={settings.n_test}); "
                    "the naive paired t ignores the overlap between training sets and is "
                    "anti-conservative (Nadeau & Bengio 2003)",
                    "design",
                )
            )
            return "corrected_resampled_ttest"
        normal = _normal_enough(f"{pair} differences", x - y, settings.alpha, decisions)
        # the t only where normality was checked and held; the reason names the test chosen
        choice = "paired_ttest" if normal else "wilcoxon"
        decisions.append(
            Decision(
                f"{pair}: {choice}",
                "paired design; "
                + (
                    "differences look normal: paired t"
                    if normal
                    else "differences depart from normality: Wilcoxon signed-rank"
                    if normal is False
                    else "normality of the differences cannot be checked: Wilcoxon signed-rank"
                ),
                "shapiro",
            )
        )
        return choice
    normal_a = _normal_enough(a, x, settings.alpha, decisions)
    normal_b = _normal_enough(b, y, settings.alpha, decisions)
    if normal_a is False or normal_b is False:
        decisions.append(
            Decision(
                f"{pair}: mann_whitney",
                "independent design; a group departs from normality",
                "shapiro",
            )
        )
        return "mann_whitney"
    equal = levene([x, y]) if x.size > 1 and y.size > 1 else None
    detail = (
        f"Levene (Brown-Forsythe) p = {equal.p_value:.4g}"
        if equal is not None and equal.defined
        else "variance check undefined"
    )
    decisions.append(
        Decision(
            f"{pair}: ttest (Welch)",
            "independent design, "
            + (
                "normal enough"
                if normal_a and normal_b
                else "normality not checked (too few values or constant)"
            )
            + f"; Welch's t, which does not assume equal variances ({detail})",
            "levene",
            equal.p_value if equal is not None and equal.defined else None,
        )
    )
    return "ttest"


def run_pairwise(
    test: str, x: np.ndarray, y: np.ndarray, settings: ComparisonSettings
) -> TestResult:
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
        if not (settings.n_train and settings.n_test):
            raise BenchDataError(
                "corrected_resampled_ttest needs n_train and n_test (the sizes of each training and test split)"
            )
        if x.size != y.size:
            raise BenchDataError(
                f"corrected_resampled_ttest needs one score per split for both groups, got {x.size} and {y.size}"
            )
        return corrected_resampled_ttest(
            x - y,
            n_train=settings.n_train,
            n_test=settings.n_test,
            alternative=alternative,
            confidence_level=level,
        )
    if test == "cv_5x2":
        return cv_5x2(
            np.reshape(x, (5, 2)) if x.size == 10 else x,
            np.reshape(y, (5, 2)) if y.size == 10 else y,
            alternative=alternative,
        )
    raise BenchDataError(f"unknown test {test!r}; pairwise tests: {', '.join(PAIRWISE_TESTS)}")


def _row(a: str, b: str, result: TestResult, design: Design, alpha: float) -> ComparisonRow:
    if len(result.n) == 1:  # one value per pair (differences): both groups have n observations
        n_a = n_b = result.n[0]
    else:
        n_a, n_b = ((*result.n, 0, 0))[:2] if result.n else (0, 0)
    n_min = min(n for n in (n_a, n_b) if n) if any((n_a, n_b)) else 0
    paired = design != "independent"
    mde = (
        detectable_effect(n_min, 0.8, alpha, design="paired" if paired else "two-sample")
        if n_min >= 3
        else NAN
    )
    power_note = (
        f"with n = {n_min}{' pairs' if paired else ' per group'}, the smallest standardized "
        f"effect detectable at 80% power (alpha {alpha}) is {mde:.2f}"
        if math.isfinite(mde)
        else "too few observations for a power estimate"
    )
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


ROW_EXTRAS = (
    "uncorrected_statistic",
    "uncorrected_p_value",
    "cliffs_delta",
    "hedges_g",
    "u_x",
    "w_plus",
    "jackknife_acceleration",  # BCa's acceleration and bias correction, for a bootstrap row
    "bias_correction_z0",
)


def _pairs(names: list[str], control: str | None) -> list[tuple[str, str]]:
    if control:
        return [(n, control) for n in names if n != control]
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]


def _requested_tests(settings: ComparisonSettings) -> tuple[list[str], list[str]]:
    """The pairwise and omnibus tests the settings name (both empty: choose automatically)."""
    tests = settings.tests or []
    unknown = [t for t in tests if t not in PAIRWISE_TESTS + OMNIBUS_TESTS]
    if unknown:
        raise BenchDataError(
            f"unknown test(s) {unknown}; expected {', '.join(PAIRWISE_TESTS + OMNIBUS_TESTS)}"
        )
    return [t for t in tests if t in PAIRWISE_TESTS], [t for t in tests if t in OMNIBUS_TESTS]


def compare_groups(
    groups: Mapping[str, Any], settings: ComparisonSettings | None = None
) -> Comparison:
    """Compare every group (in the mapping's order) as ``settings`` says; never raises for bad group data."""
    settings = settings or ComparisonSettings()
    names = list(groups)
    data: dict[str, np.ndarray] = {}
    problems: dict[str, str] = {}
    for name in names:
        try:
            data[name] = as_sample(groups[name], name, 1)
        except BenchDataError as exc:
            problems[name] = str(exc)
    comparison = Comparison(names, settings.design, settings=settings)
    comparison.summary = {
        name: describe_sample(data[name], settings.confidence_level)
        if name in data
        else {"error": problems[name]}
        for name in names
    }
    if settings.control is not None and settings.control not in groups:
        raise BenchDataError(f"control group {settings.control!r} is not among the groups {names}")
    requested, omnibus = _requested_tests(settings)
    if settings.tests is None and len(names) >= 3:
        omnibus = [_choose_omnibus(data, settings, comparison.decisions)]
    for test in omnibus:
        comparison.omnibus.append(_run_omnibus(test, names, data, problems, settings))
    for a, b in _pairs(names, settings.control):
        problem = problems.get(a) or problems.get(b)
        if problem is None and settings.design != "independent" and data[a].size != data[b].size:
            problem = (
                f"a {settings.design} design needs one value per block in both groups, "
                f"got {data[a].size} and {data[b].size}"
            )
        if problem is not None:
            test = requested[0] if requested else "auto"
            comparison.rows.append(ComparisonRow(a, b, test, reason=problem))
            continue
        tests = requested or [
            choose_pairwise_test(a, b, data[a], data[b], settings, comparison.decisions)
        ]
        for test in tests:
            comparison.rows += _pair_rows(a, b, test, data[a], data[b], settings)
    _adjust(comparison.rows, settings)
    return comparison


def _pair_rows(
    a: str, b: str, test: str, x: np.ndarray, y: np.ndarray, settings: ComparisonSettings
) -> list[ComparisonRow]:
    """One test of one pair; an automatically chosen corrected t brings the naive t beside it."""
    if test in PAIRED_ONLY and settings.design == "independent" and settings.tests is not None:
        return [
            ComparisonRow(
                a, b, test, reason=f"{test} needs a paired design (design: paired or blocked)"
            )
        ]
    try:
        rows = [_row(a, b, run_pairwise(test, x, y, settings), settings.design, settings.alpha)]
    except BenchDataError as exc:
        rows = [ComparisonRow(a, b, test, reason=str(exc))]
    if test == "mcnemar" and settings.tests is None:
        # beside the test on the discordant samples, a paired bootstrap of the difference
        try:
            boot = run_pairwise("bootstrap", x, y, settings)
        except BenchDataError:
            return rows
        rows.append(_row(a, b, boot, settings.design, settings.alpha))
        return rows
    if test == "corrected_resampled_ttest" and settings.tests is None:
        # show the naive paired t beside it, so the report can say why the correction matters
        try:
            naive = paired_ttest(x, y, confidence_level=settings.confidence_level)
        except BenchDataError:
            return rows
        row = _row(a, b, naive, settings.design, settings.alpha)
        row.test, row.reference_only = "paired_ttest (naive, for reference)", True
        rows.append(row)
    return rows


def _adjust(rows: list[ComparisonRow], settings: ComparisonSettings) -> None:
    """Correct within each test family; reference-only rows are not part of any family."""
    families: dict[str, list[ComparisonRow]] = {}
    for row in rows:
        if row.reference_only:
            row.p_adjusted = row.p_value
        else:
            families.setdefault(row.test, []).append(row)
    for family in families.values():
        adjusted = adjust_p_values([r.p_value for r in family], settings.correction)
        for row, p in zip(family, adjusted, strict=True):
            row.p_adjusted = p
    for row in rows:
        row.significant = bool(math.isfinite(row.p_adjusted) and row.p_adjusted < settings.alpha)


def _choose_omnibus(
    data: Mapping[str, np.ndarray], settings: ComparisonSettings, decisions: list[Decision]
) -> str:
    if settings.design in ("blocked", "paired"):
        decisions.append(
            Decision(
                "omnibus: friedman",
                "k configurations measured on the same blocks: Friedman test with post-hoc "
                "pairwise comparisons (Demšar 2006)",
                "design",
            )
        )
        return "friedman"
    normal = [
        _normal_enough(name, values, settings.alpha, decisions) for name, values in data.items()
    ]
    if any(n is False for n in normal):
        decisions.append(
            Decision(
                "omnibus: kruskal_wallis",
                "independent groups, at least one departs from normality",
                "shapiro",
            )
        )
        return "kruskal_wallis"
    equal = levene(list(data.values())) if all(v.size > 1 for v in data.values()) else None
    if equal is not None and equal.defined and equal.p_value <= settings.alpha:
        decisions.append(
            Decision(
                "omnibus: welch_anova",
                f"normal enough but variances differ (Levene p = {equal.p_value:.4g})",
                "levene",
                equal.p_value,
            )
        )
        return "welch_anova"
    detail = (
        f"Levene p = {equal.p_value:.4g}"
        if equal is not None and equal.defined
        else "variance check undefined"
    )
    decisions.append(
        Decision(
            "omnibus: anova",
            f"normal enough and variances compatible ({detail})",
            "levene",
            equal.p_value if equal is not None and equal.defined else None,
        )
    )
    return "anova"


def _run_omnibus(
    test: str,
    names: list[str],
    data: Mapping[str, np.ndarray],
    problems: Mapping[str, str],
    settings: ComparisonSettings,
) -> OmnibusRow:
    usable = [n for n in names if n in data]
    try:
        if problems:
            raise BenchDataError("; ".join(problems.values()))
        if test == "friedman":
            lengths = {data[n].size for n in usable}
            if len(lengths) != 1:
                raise BenchDataError(
                    f"friedman needs the same blocks for every group, got sizes {sorted(lengths)}"
                )
            result = friedman(np.column_stack([data[n] for n in usable]), usable)
        elif test == "kruskal_wallis":
            result = kruskal_wallis([data[n] for n in usable], usable)
        elif test == "welch_anova":
            result = welch_anova([data[n] for n in usable], usable)
        else:
            result = anova([data[n] for n in usable], usable)
    except BenchDataError as exc:
        return OmnibusRow(test, reason=str(exc))
    return OmnibusRow(
        test=test,
        statistic=result.statistic,
        p_value=result.p_value,
        df=list(result.df) if isinstance(result.df, tuple) else result.df,
        effect_size_name=result.effect_size_name,
        effect_size=result.effect_size if result.effect_size is not None else NAN,
        significant=bool(result.defined and result.p_value < settings.alpha),
        reason=result.reason,
        mean_ranks=result.extra.get("mean_ranks") if test == "friedman" else None,
    )
