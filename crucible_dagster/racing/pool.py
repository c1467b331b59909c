"""The sequential test against a pool: is one new configuration worse than the best of a set of
configurations already evaluated on the same blocks? (Optuna's ``racing`` pruner, issue 25.)

The bet is ``racing.sequential``'s (testing by betting, diversified Kelly; Waudby-Smith & Ramdas
2024), with the opponent on block ``t`` chosen from the pool by the pool's scores on blocks
before ``t`` only (the leader so far; ties to the earlier member). The opponent is thus fixed
before block ``t`` is seen, so when the new configuration is at least as good as every member,
``Y_t = (s_opp(t) - s_new(t)) / (high - low)`` has ``E[Y_t | past] <= 0`` for i.i.d. blocks and
the wealth is a nonnegative supermartingale: by Ville's inequality the chance that its log ever
reaches ``log(K / alpha)`` is at most ``alpha / K``. With ``K`` the study's trials, a best trial
is pruned with probability at most ``alpha`` over all looks and all trials. The pool must be
fixed when the trial starts (the completed trials then): a pool that grew between looks would
make the looks different processes, which Ville's bound does not cover."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from crucible_dagster.racing.sequential import LAMBDAS, ScoreOutOfRange


@dataclass(frozen=True)
class PoolEvidence:
    """The test's answer at the last look: e-value, p (and adjusted over ``trials``), drop?"""

    blocks: int
    log_e: float
    p_value: float
    p_adjusted: float
    prune: bool

    def to_json(self) -> dict[str, float | int | bool]:
        return {
            "blocks": self.blocks,
            "e_value": math.exp(min(self.log_e, 700.0)),
            "p_value": self.p_value,
            "p_adjusted": self.p_adjusted,
            "pruned": self.prune,
        }


def pool_evidence(
    scores: Sequence[float],
    pool: Sequence[Sequence[float]],
    *,
    looks: Sequence[int],
    trials: int,
    alpha: float,
    score_range: tuple[float, float],
    direction: Literal["maximize", "minimize"] = "maximize",
) -> PoolEvidence:
    """The largest e-value at ``looks`` (block counts) against ``pool`` (each member scored on
    at least ``len(scores)`` blocks), Bonferroni over ``trials``: prune at ``e >= trials/alpha``."""
    low, high = score_range
    n = len(scores)
    table = np.asarray([list(m[:n]) for m in pool], dtype=float).reshape(len(pool), n)
    mine = np.asarray(scores, dtype=float)
    _check_range(mine, low, high, "this trial")
    _check_range(table, low, high, "a pool member")
    sign = 1.0 if direction == "maximize" else -1.0
    lams = np.asarray(LAMBDAS)
    wealth = np.zeros(len(lams))
    sums = np.zeros(len(pool))
    sup = 0.0
    marks = {k for k in looks if 1 <= k <= n}
    for t in range(n if len(pool) else 0):
        opponent = int(np.lexsort((np.arange(len(pool)), -sign * sums))[0])
        y = sign * (table[opponent, t] - mine[t]) / (high - low)
        wealth += np.log1p(y * lams)
        sums += table[:, t]
        if t + 1 in marks:
            top = float(wealth.max())
            sup = max(sup, top + math.log(float(np.exp(wealth - top).mean())))
    p = min(1.0, math.exp(-sup))
    return PoolEvidence(n, sup, p, min(1.0, trials * p), sup >= math.log(trials / alpha))


def _check_range(values: np.ndarray, low: float, high: float, whose: str) -> None:
    bad = ~(np.isfinite(values) & (values >= low) & (values <= high))
    if bad.any():
        value = float(values[tuple(np.argwhere(bad)[0])])
        raise ScoreOutOfRange(
            f"{whose}: score {value!r} is outside the declared range [{low}, {high}] "
            "(sweep.racing.score_range); the racing pruner's error bound holds only inside it"
        )
