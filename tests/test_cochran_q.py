"""Cochran's Q against published values, its exact p, its edges, and the bench choosing it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crucible_dagster.bench.cochran import cochran_q, exact_q_p_value
from crucible_dagster.bench.compare import compare_groups
from crucible_dagster.bench.data import BenchDataError
from crucible_dagster.bench.settings import ComparisonSettings
from tests.paired_helpers import WAVE2

# WaveMetrics Igor Pro manual, StatsCochranTest ("Cochran's Q test" example, wave1 and wave2):
# https://www.wavemetrics.com/products/igorpro/dataanalysis/statistics/tests/statistics_pxp10
WAVE1 = [
    [0, 0, 0, 0, 1],
    [0, 0, 0, 0, 1],
    [0, 0, 0, 1, 1],
    [0, 1, 0, 1, 1],
    [0, 1, 0, 1, 0],
    [1, 1, 0, 1, 0],
    [1, 1, 0, 0, 0],
    [1, 0, 0, 0, 0],
    [1, 0, 0, 0, 0],
]


@pytest.mark.parametrize(
    ("table", "q", "p"), [(WAVE1, 5.56522, 0.234056), (WAVE2, 10.3636, 0.0347281)]
)
def test_cochran_q_matches_the_published_example(
    table: list[list[int]], q: float, p: float
) -> None:
    result = cochran_q(table)
    assert result.statistic == pytest.approx(q, abs=5e-5)
    assert result.p_value == pytest.approx(p, abs=5e-7)
    assert result.df == 4.0 and result.n == (9, 5)


def test_sheskin_example_by_hand() -> None:
    """NCSS's Cochran's Q chapter (after Sheskin, ch. 26), 12 subjects x 3 conditions:
    C = (6, 9, 3), N = 18, sum R^2 = 38, so Q = 2 (3 * 126 - 324) / (54 - 38) = 6.75."""
    rows = ["010", "110", "111", "000", "100", "011", "000", "110", "010", "111", "010", "110"]
    result = cochran_q([[int(c) for c in r] for r in rows])
    assert result.statistic == pytest.approx(6.75)
    assert result.p_value == pytest.approx(math.exp(-6.75 / 2))  # chi2 sf on 2 df


def test_two_conditions_are_mcnemar_and_the_exact_p_is_the_binomial() -> None:
    """k = 2: Q is McNemar's uncorrected (b - c)^2 / (b + c), and the exact permutation p is
    the exact two-sided binomial p: 6 discordant pairs all one way give 2 * 0.5^6."""
    table = [[1, 0]] * 6 + [[1, 1]] * 10 + [[0, 0]] * 14
    result = cochran_q(table)
    assert result.statistic == pytest.approx(6.0)
    assert result.extra["p_value_exact"] == pytest.approx(2 * 0.5**6)
    mixed = [[1, 0]] * 7 + [[0, 1]] * 2 + [[1, 1]] * 5
    from scipy import stats

    exact = stats.binomtest(7, 9, 0.5).pvalue
    assert cochran_q(mixed).extra["p_value_exact"] == pytest.approx(exact)


def test_exact_p_sums_the_permutation_distribution() -> None:
    """Three blocks each right under one of three conditions: every arrangement is equally
    likely (27), Q is largest (6) only when all fall in one column (3 of 27)."""
    assert exact_q_p_value([1, 1, 1], 3, 6.0) == (pytest.approx(3 / 27), None)
    assert exact_q_p_value([1, 1, 1], 3, 0.0)[0] == pytest.approx(1.0)


def test_exact_p_gives_up_with_the_reason_on_a_large_table() -> None:
    rng = np.random.default_rng(0)
    result = cochran_q((rng.random((400, 6)) < 0.5).astype(int))
    assert math.isnan(result.extra["p_value_exact"])
    assert "only the chi-squared p" in result.extra["p_value_exact_reason"]
    assert math.isfinite(result.p_value)


def test_edges_are_undefined_with_a_reason_or_refused() -> None:
    tied = cochran_q([[1, 1, 1], [0, 0, 0]])
    assert math.isnan(tied.p_value) and "0/0" in (tied.reason or "")
    assert tied.extra["p_value_exact"] == 1.0
    with pytest.raises(BenchDataError, match="0 or 1"):
        cochran_q([[0, 2, 1]])
    with pytest.raises(BenchDataError, match="NaN or infinite"):
        cochran_q([[0, float("nan"), 1]])
    with pytest.raises(BenchDataError, match="at least 1 block and 2"):
        cochran_q([[1], [0]])
    with pytest.raises(BenchDataError, match="at least 1 block and 2"):
        cochran_q(np.zeros((0, 3)))
    one = cochran_q([[1, 0, 0]])  # a single block: defined, and the exact p says how weak
    assert one.statistic == pytest.approx(2.0) and one.extra["p_value_exact"] == pytest.approx(1.0)


@pytest.mark.slow
def test_compare_groups_chooses_cochran_q_and_pairwise_mcnemar_for_binary_blocks() -> None:
    table = np.asarray(WAVE2)
    groups = {f"g{j + 1}": table[:, j].tolist() for j in range(5)}
    comparison = compare_groups(
        groups, ComparisonSettings(design="blocked", n_resamples=500)
    ).to_dict()
    (omnibus,) = comparison["omnibus"]
    assert omnibus["test"] == "cochran_q"
    assert omnibus["statistic"] == pytest.approx(10.3636, abs=5e-5)
    assert "p_value_exact" in omnibus and omnibus["proportions"][2] == 0.0
    assert {r["test"] for r in comparison["comparisons"]} == {"mcnemar", "bootstrap"}
    mcnemar_rows = [r for r in comparison["comparisons"] if r["test"] == "mcnemar"]
    assert len(mcnemar_rows) == 10 and all("b" in r and "c" in r for r in mcnemar_rows)
    raw = sorted(r["p_value"] for r in mcnemar_rows)
    adjusted = sorted(r["p_adjusted"] for r in mcnemar_rows)
    assert adjusted[0] == pytest.approx(min(1.0, raw[0] * 10))  # Holm's first step
    continuous = {k: [v + 0.5 * i for i, v in enumerate(vals)] for k, vals in groups.items()}
    again = compare_groups(continuous, ComparisonSettings(design="blocked")).to_dict()
    assert again["omnibus"][0]["test"] == "friedman"
