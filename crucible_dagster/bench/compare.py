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
from crucible_dagster.bench.bootstrap import bootstrap_difference
from crucible_dagster.bench.data import BenchDataError, as_sample
from crucible_dagster.bench.multiple import adjust_p_values
from crucible_dagster.bench.nonparametric import friedman, kruskal_wallis, mann_whitney, wilcoxon
from crucible_dagster.bench.parametric import (
    anova,
    corrected_resampled_ttest,
    cv_5x2,
    paired_ttest,
    ttest,
    welch_anova,
)
from crucible_dagster.bench.power import detectable_effect
from crucible_dagster.bench.result import NAN, TestResult

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
PAIRED_ONLY = ("paired_ttest", "wilcoxon", "corrected_resampled_ttest", "cv_5x2")


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
    rows: list[dict[str, Any]] = field(default_factory=list)
    omnibus: list[dict[str, Any]] = field(default_factory=list)
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
            "omnibus": self.omnibus,
            "comparisons": self.rows,
            "decisions": [d.to_dict() for d in self.decisions],
            "tests_run": sorted({r["test"] for r in self.rows} | {o["test"] for o in self.omnibus}),
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
        if settings.n_train and settings.n_test:
            decisions.append(
                Decision(
                    f"{pair}: corrected_resampled_ttest",
                    f"scores come from resampled train/test splits (n_train={settings.n_train}, n_test={settings.n_test}); "
                    "the naive paired t ignores the overlap between training sets and is anti-conservative (Nadeau & Bengio 2003)",
                    "design",
                )
            )
            return "corrected_resampled_ttest"
        normal = _normal_enough(f"{pair} differences", x - y, settings.alpha, decisions)
        choice = "paired_ttest" if normal is not False else "wilcoxon"
        decisions.append(
            Decision(
                f"{pair}: {choice}",
                "paired design; "
                + (
                    "differences look normal"
                    if normal
                    else "differences are not normal or cannot be checked: rank test"
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
            f"independent design, normal enough; Welch does not assume equal variances ({detail})",
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
        return mann_whitney(x, y, alternative=alternative)
    if test == "wilcoxon":
        return wilcoxon(x, y, alternative=alternative)
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
            x - y, n_train=settings.n_train, n_test=settings.n_test, alternative=alternative
        )
    if test == "cv_5x2":
        return cv_5x2(
            np.reshape(x, (5, 2)) if x.size == 10 else x,
            np.reshape(y, (5, 2)) if y.size == 10 else y,
        )
    raise BenchDataError(f"unknown test {test!r}; pairwise tests: {', '.join(PAIRWISE_TESTS)}")


def _row(a: str, b: str, result: TestResult, design: Design, alpha: float) -> dict[str, Any]:
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
    row = {
        "group_a": a,
        "group_b": b,
        "test": result.test,
        "method": result.method,
        "statistic": result.statistic,
        "df": list(result.df) if isinstance(result.df, tuple) else result.df,
        "p_value": result.p_value,
        "p_adjusted": NAN,
        "significant": False,
        "estimate": result.estimate,
        "ci_low": result.ci[0] if result.ci else NAN,
        "ci_high": result.ci[1] if result.ci else NAN,
        "effect_size_name": result.effect_size_name,
        "effect_size": result.effect_size if result.effect_size is not None else NAN,
        "effect_size_ci_low": result.effect_size_ci[0] if result.effect_size_ci else NAN,
        "effect_size_ci_high": result.effect_size_ci[1] if result.effect_size_ci else NAN,
        "n_a": n_a,
        "n_b": n_b,
        "min_detectable_effect": mde,
        "power_note": (
            f"with n = {n_min}{' pairs' if paired else ' per group'}, the smallest standardized effect detectable at 80% power (alpha {alpha}) is {mde:.2f}"
            if math.isfinite(mde)
            else "too few observations for a power estimate"
        ),
        "reason": result.reason,
    }
    for key in (
        "uncorrected_statistic",
        "uncorrected_p_value",
        "cliffs_delta",
        "hedges_g",
        "u_x",
        "w_plus",
    ):
        if key in result.extra:
            row[key] = result.extra[key]
    return row


def _failed_row(a: str, b: str, test: str, reason: str) -> dict[str, Any]:
    return {
        "group_a": a,
        "group_b": b,
        "test": test,
        "method": "",
        "statistic": NAN,
        "df": None,
        "p_value": NAN,
        "p_adjusted": NAN,
        "significant": False,
        "estimate": NAN,
        "ci_low": NAN,
        "ci_high": NAN,
        "effect_size_name": None,
        "effect_size": NAN,
        "effect_size_ci_low": NAN,
        "effect_size_ci_high": NAN,
        "n_a": 0,
        "n_b": 0,
        "min_detectable_effect": NAN,
        "power_note": "",
        "reason": reason,
    }


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
    pairs = (
        [(n, settings.control) for n in names if n != settings.control]
        if settings.control
        else [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    )
    requested = [t for t in (settings.tests or []) if t in PAIRWISE_TESTS]
    omnibus = [t for t in (settings.tests or []) if t in OMNIBUS_TESTS]
    if settings.tests is not None:
        unknown = [t for t in settings.tests if t not in PAIRWISE_TESTS + OMNIBUS_TESTS]
        if unknown:
            raise BenchDataError(
                f"unknown test(s) {unknown}; expected {', '.join(PAIRWISE_TESTS + OMNIBUS_TESTS)}"
            )
    if settings.tests is None and len(names) >= 3:
        omnibus = [_choose_omnibus(data, settings, comparison.decisions)]
    for test in omnibus:
        comparison.omnibus.append(_run_omnibus(test, names, data, problems, settings))
    for a, b in pairs:
        if a in problems or b in problems:
            comparison.rows.append(
                _failed_row(
                    a, b, requested[0] if requested else "auto", problems.get(a) or problems[b]
                )
            )  # type: ignore[index]
            continue
        x, y = data[a], data[b]
        if settings.design != "independent" and x.size != y.size:
            reason = f"a {settings.design} design needs one value per block in both groups, got {x.size} and {y.size}"
            comparison.rows.append(_failed_row(a, b, requested[0] if requested else "auto", reason))
            continue
        tests = requested or [choose_pairwise_test(a, b, x, y, settings, comparison.decisions)]
        for test in tests:
            if (
                test in PAIRED_ONLY
                and settings.design == "independent"
                and settings.tests is not None
            ):
                comparison.rows.append(
                    _failed_row(
                        a, b, test, f"{test} needs a paired design (design: paired or blocked)"
                    )
                )
                continue
            try:
                comparison.rows.append(
                    _row(a, b, run_pairwise(test, x, y, settings), settings.design, settings.alpha)
                )
            except BenchDataError as exc:
                comparison.rows.append(_failed_row(a, b, test, str(exc)))
            if test == "corrected_resampled_ttest" and settings.tests is None:
                # show the naive paired t beside it, so the report can say why the correction matters
                try:
                    naive = _row(
                        a,
                        b,
                        paired_ttest(x, y, confidence_level=settings.confidence_level),
                        settings.design,
                        settings.alpha,
                    )
                    naive["test"] = "paired_ttest (naive, for reference)"
                    naive["reference_only"] = True
                    comparison.rows.append(naive)
                except BenchDataError:
                    pass
    _adjust(comparison.rows, settings)
    return comparison


def _adjust(rows: list[dict[str, Any]], settings: ComparisonSettings) -> None:
    """Correct within each test family; reference-only rows are not part of any family."""
    families: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        if not row.get("reference_only"):
            families.setdefault(row["test"], []).append(index)
    for indices in families.values():
        adjusted = adjust_p_values([rows[i]["p_value"] for i in indices], settings.correction)
        for i, p in zip(indices, adjusted, strict=True):
            rows[i]["p_adjusted"] = p
            rows[i]["significant"] = bool(math.isfinite(p) and p < settings.alpha)
    for row in rows:
        if row.get("reference_only"):
            row["p_adjusted"] = row["p_value"]
            row["significant"] = bool(
                math.isfinite(row["p_value"]) and row["p_value"] < settings.alpha
            )


def _choose_omnibus(
    data: Mapping[str, np.ndarray], settings: ComparisonSettings, decisions: list[Decision]
) -> str:
    if settings.design in ("blocked", "paired"):
        decisions.append(
            Decision(
                "omnibus: friedman",
                "k configurations measured on the same blocks: Friedman test with post-hoc pairwise comparisons (Demšar 2006)",
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
) -> dict[str, Any]:
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
        return {
            "test": test,
            "statistic": NAN,
            "p_value": NAN,
            "df": None,
            "effect_size_name": None,
            "effect_size": NAN,
            "significant": False,
            "reason": str(exc),
        }
    return {
        "test": test,
        "statistic": result.statistic,
        "p_value": result.p_value,
        "df": list(result.df) if isinstance(result.df, tuple) else result.df,
        "effect_size_name": result.effect_size_name,
        "effect_size": result.effect_size,
        "significant": bool(result.defined and result.p_value < settings.alpha),
        "reason": result.reason,
        **({"mean_ranks": result.extra.get("mean_ranks")} if test == "friedman" else {}),
    }
