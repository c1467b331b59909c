"""The racing pruner's test against a pool (``racing.pool``): its e-value against the closed
form on a constructed case, its error under the null (Ville's inequality: a best trial is
pruned with probability at most alpha / K), and its refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crucible_dagster.racing.pool import pool_evidence
from crucible_dagster.racing.sequential import LAMBDAS, ScoreOutOfRange


def test_a_trial_scoring_0_against_a_pool_scoring_1_matches_the_closed_form() -> None:
    # Y = 1 on every block: the wealth of fraction lam after n blocks is (1 + lam)^n, and the
    # e-value is their mean; the first look where it reaches K / alpha is where it prunes
    trials, alpha = 10, 0.05
    for n in range(1, 16):
        closed = float(np.mean([(1 + lam) ** n for lam in LAMBDAS]))
        got = pool_evidence(
            [0.0] * n,
            [[1.0] * n, [0.9] * n],
            looks=range(1, n + 1),
            trials=trials,
            alpha=alpha,
            score_range=(0.0, 1.0),
        )
        assert math.exp(got.log_e) == pytest.approx(closed, rel=1e-12)
        assert got.p_adjusted == pytest.approx(min(1.0, trials / closed))
        assert got.prune == (closed >= trials / alpha)


def test_the_opponent_is_the_pools_leader_on_the_blocks_before() -> None:
    # member 0 leads after block 1, so block 2 is bet against member 0's score, not member 1's
    mine, pool = [0.5, 0.5], [[1.0, 0.5], [0.0, 1.0]]
    got = pool_evidence(
        mine, pool, looks=[2], trials=1, alpha=0.05, score_range=(0.0, 1.0)
    )  # block 1: opponent member 0 (tie at 0, the earlier) Y = 0.5; block 2: member 0, Y = 0
    expected = float(np.mean([1 + lam * 0.5 for lam in LAMBDAS]))
    assert math.exp(got.log_e) == pytest.approx(expected)


@pytest.mark.slow
def test_under_the_null_a_trial_is_pruned_at_most_alpha_of_the_time() -> None:
    rng = np.random.default_rng(2026)
    alpha, runs, blocks, pruned = 0.1, 400, 40, 0
    for _ in range(runs):
        pool = rng.uniform(0, 1, size=(3, blocks))  # three members, same mean as the trial
        mine = rng.uniform(0, 1, size=blocks)
        got = pool_evidence(
            mine.tolist(),
            pool.tolist(),
            looks=range(1, blocks + 1),
            trials=1,
            alpha=alpha,
            score_range=(0.0, 1.0),
        )
        pruned += got.prune
    # Ville: at most alpha over every look; with 400 runs, 3 standard errors above
    assert pruned / runs <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


def test_a_better_trial_is_not_pruned_and_equal_scores_say_nothing() -> None:
    better = pool_evidence(
        [0.9] * 30, [[0.5] * 30], looks=range(1, 31), trials=1, alpha=0.05, score_range=(0, 1)
    )
    assert not better.prune and better.p_value == 1.0
    same = pool_evidence(
        [0.5] * 30, [[0.5] * 30], looks=range(1, 31), trials=1, alpha=0.05, score_range=(0, 1)
    )
    assert same.log_e == 0.0 and same.p_adjusted == 1.0 and not same.prune
    empty = pool_evidence([0.0] * 5, [], looks=[5], trials=1, alpha=0.05, score_range=(0, 1))
    assert not empty.prune and empty.p_value == 1.0


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan"), float("inf")])
def test_a_score_outside_the_declared_range_is_refused(bad: float) -> None:
    with pytest.raises(ScoreOutOfRange) as info:
        pool_evidence([0.5, bad], [[0.5, 0.5]], looks=[2], trials=1, alpha=0.05, score_range=(0, 1))
    assert "sweep.racing.score_range" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ScoreOutOfRange, match="a pool member"):
        pool_evidence([0.5, 0.5], [[0.5, bad]], looks=[2], trials=1, alpha=0.05, score_range=(0, 1))
