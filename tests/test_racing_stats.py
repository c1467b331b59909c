"""The racing tests' statistics: F-race's Friedman and Conover against published values, and the
sequential test's error bound and decisions on cases whose answer is known without our code."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crucible_dagster.racing.frace import (
    block_ranks,
    conover_p_values,
    frace_look,
    friedman_statistic,
)
from crucible_dagster.racing.sequential import LAMBDAS, SequentialTest

#: 3 blocks x 7 groups; R PMCMRplus::frdAllPairsConoverTest(y, p.adjust.method = "none") and
#: durbinTest/friedman.test outputs as recorded in scikit-posthocs' test suite
#: (tests/test_posthocs.py: df_bn, test_posthoc_conover_friedman_non_melted, test_durbin)
DF_BN = np.array([[4, 3, 4, 4, 5, 6, 3], [1, 2, 3, 5, 6, 7, 7], [1, 2, 6, 4, 1, 5, 1]], float)
CONOVER_LOWER = [
    [0.9147508],
    [0.1518030, 0.18071036],
    [0.2140927, 0.25232845, 0.8305955],
    [0.2140927, 0.25232845, 0.8305955, 1.000000],
    [0.0181602, 0.02222747, 0.2523284, 0.1807104, 0.1807104],
    [0.5242303, 0.59465124, 0.3989535, 0.5242303, 0.5242303, 0.05991984],
]


WINE = [[10, 7, 8], [8, 5, 5], [7, 8, 6], [9, 6, 4], [7, 5, 7], [4, 7, 5]]
WINE += [[5, 9, 3], [6, 6, 7], [5, 4, 6], [10, 6, 4], [4, 7, 4], [7, 3, 3]]


def test_conover_all_pairs_matches_r() -> None:
    p = conover_p_values(block_ranks(DF_BN, "minimize"))
    for i, row in enumerate(CONOVER_LOWER, start=1):
        for j, expected in enumerate(row):
            assert p[i, j] == pytest.approx(expected, abs=6e-7), (i, j)
            assert p[j, i] == p[i, j]


def test_friedman_matches_r_with_ties() -> None:
    statistic, p = friedman_statistic(block_ranks(DF_BN, "minimize"))
    assert statistic == pytest.approx(8.468354, abs=6e-7)
    assert p == pytest.approx(0.205758, abs=6e-7)


@pytest.mark.parametrize(
    ("table", "statistic", "p_value"),
    [
        # R ?friedman.test (warpbreaks cell means): 0.33333, df 1, p 0.5637 -- k = 2 works
        ([[44.55556, 28.22222], [24.0, 28.77778], [24.55556, 18.77778]], 0.33333, 0.5637),
        # pingouin.friedman docstring (wine, ties within blocks): Q 2.0, p 0.367879
        (
            WINE,
            2.0,
            0.367879,
        ),
    ],
)
def test_friedman_published_examples(
    table: list[list[float]], statistic: float, p_value: float
) -> None:
    got_statistic, got_p = friedman_statistic(block_ranks(np.array(table, float), "minimize"))
    assert got_statistic == pytest.approx(statistic, abs=6e-6)
    assert got_p == pytest.approx(p_value, abs=6e-5)


def test_direction_flips_the_ranks() -> None:
    assert block_ranks(np.array([[0.9, 0.1]]), "maximize").tolist() == [[1.0, 2.0]]
    assert block_ranks(np.array([[0.9, 0.1]]), "minimize").tolist() == [[2.0, 1.0]]


def test_frace_drops_against_the_best_only_after_friedman_rejects() -> None:
    rng = np.random.default_rng(3)
    table = np.column_stack([rng.normal(m, 0.05, 12) for m in (0.9, 0.88, 0.5, 0.4)])
    look = frace_look(["a", "b", "c", "d"], table, 0.05, "maximize", 1)
    assert look.omnibus_p is not None and look.omnibus_p < 0.05
    assert look.dropped == ["c", "d"]
    best = next(e for e in look.evidence if e.config == "a")
    assert best.p_value is None and best.reason == "best rank sum"


@pytest.mark.parametrize(
    ("table", "why"),
    [
        (np.full((6, 3), 0.7), "every block ties"),
        (np.array([[0.1, 0.9, 0.5]]), "one block"),
    ],
)
def test_frace_says_undefined_instead_of_a_number(table: np.ndarray, why: str) -> None:
    look = frace_look(["a", "b", "c"], table, 0.05, "maximize", 1)
    assert why in look.note and look.note.startswith("undefined")
    assert look.dropped == [] and look.omnibus_p is None


def _blocks_to_drop(y: float, k: int, alpha: float) -> int:
    """First t at which mean over LAMBDAS of (1 + lam y)^t reaches K / alpha (closed form of a
    bettor facing the same scaled difference y on every block)."""
    t = 0
    while True:
        t += 1
        if sum((1 + lam * y) ** t for lam in LAMBDAS) / len(LAMBDAS) >= k / alpha:
            return t


def test_sequential_drops_the_worst_at_the_expected_block() -> None:
    test = SequentialTest(["best", "mid", "worst"], alpha=0.05, low=0.0, high=1.0)
    survivors = ["best", "mid", "worst"]
    expected = _blocks_to_drop(1.0, 3, 0.05)  # worst scores 0 where the leader scores 1
    dropped_at: dict[str, int] = {}
    for t in range(1, 40):
        test.update(survivors, [{"best": 1.0, "mid": 0.5, "worst": 0.0}])
        look = test.look(survivors, min_survivors=1)
        for c in look.dropped:
            dropped_at.setdefault(c, t)
        survivors = [c for c in survivors if c not in look.dropped]
    assert dropped_at["worst"] == expected
    assert dropped_at["mid"] == _blocks_to_drop(0.5, 3, 0.05)
    assert survivors == ["best"]


def test_sequential_evidence_is_an_anytime_p_adjusted_over_configurations() -> None:
    test = SequentialTest(["a", "b"], alpha=0.1, low=0.0, high=2.0)
    test.update(["a", "b"], [{"a": 2.0, "b": 0.0}] * 3)
    look = test.look(["a", "b"], 1)
    b = next(e for e in look.evidence if e.config == "b")
    e_value = sum((1 + lam) ** 3 for lam in LAMBDAS) / len(LAMBDAS)
    assert b.statistic == pytest.approx(e_value)
    assert b.p_value == pytest.approx(1 / e_value)
    assert b.p_adjusted == pytest.approx(min(1.0, 2 / e_value))


def test_sequential_minimize_bets_the_other_way() -> None:
    test = SequentialTest(["low_loss", "high_loss"], 0.05, 0.0, 1.0, direction="minimize")
    for _ in range(30):
        test.update(["low_loss", "high_loss"], [{"low_loss": 0.1, "high_loss": 0.9}])
    assert test.look(["low_loss", "high_loss"], 1).dropped == ["high_loss"]


def test_constant_metric_drops_nobody_and_says_why() -> None:
    test = SequentialTest(["a", "b", "c"], 0.05, 0.0, 1.0)
    test.update(["a", "b", "c"], [{"a": 0.5, "b": 0.5, "c": 0.5}] * 200)
    look = test.look(["a", "b", "c"], 1)
    assert look.dropped == [] and look.note.startswith("undefined")
    assert all(e.p_value == 1.0 for e in look.evidence)


def _race_drops_any(scores: np.ndarray, alpha: float, look_every: int) -> bool:
    k = scores.shape[0]
    configs = [str(i) for i in range(k)]
    test = SequentialTest(configs, alpha, 0.0, 1.0)
    survivors = list(configs)
    for start in range(0, scores.shape[1], look_every):
        rows = scores[[int(c) for c in survivors], start : start + look_every].T
        test.update_table(survivors, rows)
        if test.look(survivors, 1).dropped:
            return True
    return False


@pytest.mark.slow
def test_sequential_error_over_all_looks_stays_below_alpha() -> None:
    """All configurations equal (every one is a best): dropping any is an error. Looking every 4
    blocks for 240 blocks, 300 races: the rate stays at most alpha (plus 3 Monte-Carlo standard
    errors), where a test that looked without correction would not (checked below)."""
    rng = np.random.default_rng(20261202)
    alpha, races = 0.1, 300
    errors = sum(
        _race_drops_any((rng.random((4, 240)) < 0.5).astype(float), alpha, look_every=4)
        for _ in range(races)
    )
    assert errors / races <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / races)


@pytest.mark.slow
def test_the_error_check_can_fail_a_test_that_ignores_the_looks() -> None:
    """The same simulation with frace (unadjusted over looks) errs far more than alpha: the
    check above has the power to catch a test that does not control repeated looks."""
    rng = np.random.default_rng(20261202)
    alpha, races, errors = 0.1, 60, 0
    for _ in range(races):
        scores = rng.normal(0.5, 0.1, (4, 60))
        for n in range(2, 61, 2):
            if frace_look(list("abcd"), scores[:, :n].T, alpha, "maximize", 1).dropped:
                errors += 1
                break
    assert errors / races > 2 * alpha
