"""Running one omnibus test (ANOVA, Welch's ANOVA, Kruskal-Wallis, Friedman) over every group."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from crucible_dagster.bench.cochran import cochran_q
from crucible_dagster.bench.data import BenchDataError
from crucible_dagster.bench.nonparametric import friedman, kruskal_wallis
from crucible_dagster.bench.parametric import anova, welch_anova
from crucible_dagster.bench.result import NAN, TestResult
from crucible_dagster.bench.rows import OmnibusRow
from crucible_dagster.bench.settings import ComparisonSettings


def _omnibus_result(test: str, usable: list[str], data: Mapping[str, np.ndarray]) -> TestResult:
    if test in ("friedman", "cochran_q"):
        lengths = {data[n].size for n in usable}
        if len(lengths) != 1:
            raise BenchDataError(
                f"{test} needs the same blocks for every group, got sizes {sorted(lengths)}"
            )
        table = np.column_stack([data[n] for n in usable])
        return friedman(table, usable) if test == "friedman" else cochran_q(table, usable)
    if test == "kruskal_wallis":
        return kruskal_wallis([data[n] for n in usable], usable)
    if test == "welch_anova":
        return welch_anova([data[n] for n in usable], usable)
    return anova([data[n] for n in usable], usable)


#: what an omnibus row keeps of its test's extras (Cochran's Q's exact p and proportions)
OMNIBUS_EXTRAS = ("p_value_exact", "p_value_exact_reason", "proportions", "informative_blocks")


def run_omnibus(
    test: str,
    names: list[str],
    data: Mapping[str, np.ndarray],
    problems: Mapping[str, str],
    settings: ComparisonSettings,
) -> OmnibusRow:
    """The omnibus row; a group with bad data makes it undefined, with that group's problem."""
    usable = [n for n in names if n in data]
    try:
        if problems:
            raise BenchDataError("; ".join(problems.values()))
        result = _omnibus_result(test, usable, data)
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
        extra={k: result.extra[k] for k in OMNIBUS_EXTRAS if k in result.extra},
    )
