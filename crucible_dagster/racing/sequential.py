"""``sequential``: drop a configuration once an anytime-valid test says it is not the best.

The test is *testing by betting* (Shafer 2021, "Testing by betting", JRSS A 184(2); Waudby-Smith
& Ramdas 2024, "Estimating means of bounded random variables by betting", JRSS B 86(1)). For each
configuration ``i`` a gambler bets, block after block, that ``i`` scores below an opponent chosen
from the past blocks only (the current leader; the runner-up when ``i`` leads). With scores in a
declared range ``[low, high]`` the scaled difference ``Y = (s_opp - s_i) / (high - low)`` lies in
``[-1, 1]``, and the wealth ``W = prod(1 + lam * Y)`` with ``0 <= lam < 1`` is a nonnegative
supermartingale whenever ``i`` is a best configuration (``E[Y] <= 0`` for *any* opponent picked
from the past, when blocks are i.i.d. draws). Betting several fractions ``lam`` at once and
averaging their wealth ("diversified Kelly", Waudby-Smith & Ramdas, section 5) is again a
supermartingale, so Ville's inequality bounds ``P(sup_t e_i(t) >= K / alpha) <= alpha / K`` for
each best ``i``: dropping ``i`` when ``e_i >= K / alpha`` (``p_adjusted = K / sup e_i <= alpha``)
drops *any* configuration whose mean equals the best's with probability at most ``alpha``, over
every look and all ``K`` configurations, however often and whenever the race looks. This is the
Maron & Moore (1994) Hoeffding race with the fixed-n bound replaced by a time-uniform one.

The guarantee needs blocks that are i.i.d. draws: seeds are; samples are when the dataset is a
random sample of the population the configurations are meant for (the race visits them in a
seeded random order); folds of one cross-validation are not independent, so there it is
approximate. Scores outside ``[low, high]`` void it and are refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from crucible_dagster.racing.evidence import ConfigEvidence, Look, keep_min_survivors

TEST_NAME = "sequential (testing by betting, diversified Kelly, Bonferroni over configurations)"
#: the betting fractions averaged (all < 1, so 1 + lam * Y > 0 for Y >= -1)
LAMBDAS: tuple[float, ...] = (0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


class ScoreOutOfRange(ValueError):
    """A score outside the declared range: the test's guarantee would not hold."""


@dataclass
class SequentialTest:
    """The betting state of one race: per configuration, the log-wealth of each fraction, the
    running sum of its scores and the largest log e-value seen at a look. JSON round-trips it
    exactly, so a resumed race continues with the very same numbers."""

    configs: list[str]
    alpha: float
    low: float
    high: float
    direction: Literal["maximize", "minimize"] = "maximize"
    blocks: int = 0
    log_wealth: dict[str, list[float]] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)
    sup_log_e: dict[str, float] = field(default_factory=dict)
    any_difference: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must lie strictly between 0 and 1, got {self.alpha}")
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(
                f"the score range must be two finite numbers, low < high; got [{self.low}, {self.high}]"
            )
        for c in self.configs:
            self.log_wealth.setdefault(c, [0.0] * len(LAMBDAS))
            self.sums.setdefault(c, 0.0)
            self.sup_log_e.setdefault(c, 0.0)

    @property
    def threshold(self) -> float:
        """The log e-value at which a configuration is dropped: log(K / alpha)."""
        return math.log(len(self.configs) / self.alpha)

    def update(self, survivors: Sequence[str], block_scores: Sequence[Mapping[str, float]]) -> None:
        """Feed blocks in order; each maps every survivor to its score on that block."""
        for i, scores in enumerate(block_scores):
            missing = [c for c in survivors if c not in scores]
            if missing:
                raise ValueError(
                    f"block {self.blocks + i + 1}: no score for survivor {missing[0]!r}"
                )
        table = np.array([[float(s[c]) for c in survivors] for s in block_scores], dtype=float)
        self.update_table(survivors, table.reshape(len(block_scores), len(survivors)))

    def update_table(self, survivors: Sequence[str], table: np.ndarray) -> None:
        """Feed a blocks x survivors table of scores, blocks in order."""
        self._check_range(survivors, table)
        lams = np.asarray(LAMBDAS)
        span = self.high - self.low
        sign = 1.0 if self.direction == "maximize" else -1.0
        wealth = np.array([self.log_wealth[c] for c in survivors], dtype=float)
        sums = np.array([self.sums[c] for c in survivors], dtype=float)
        for values in table:
            y = sign * (values[_opponents(sign * sums)] - values) / span
            self.any_difference = self.any_difference or bool(np.any(y != 0))
            wealth += np.log1p(np.multiply.outer(y, lams))
            sums += values
        self.blocks += len(table)
        for i, c in enumerate(survivors):
            self.log_wealth[c] = wealth[i].tolist()
            self.sums[c] = float(sums[i])

    def _check_range(self, survivors: Sequence[str], table: np.ndarray) -> None:
        bad = ~(np.isfinite(table) & (table >= self.low) & (table <= self.high))
        if not bad.any():
            return
        row, col = (int(x) for x in np.argwhere(bad)[0])
        raise ScoreOutOfRange(
            f"configuration {survivors[col]!r}, block {self.blocks + row + 1}: score "
            f"{float(table[row, col])!r} is outside the declared range [{self.low}, {self.high}] "
            "(sweep.racing.score_range); the sequential test's error bound holds only inside it"
        )

    def log_e(self, config: str) -> float:
        """log of the averaged wealth: log(mean_lam W_lam)."""
        w = np.asarray(self.log_wealth[config])
        top = float(w.max())
        return top + math.log(float(np.exp(w - top).mean()))

    def look(self, survivors: Sequence[str], min_survivors: int) -> Look:
        """Decide after a round: drop every survivor whose adjusted p is at most alpha (keeping
        ``min_survivors``, the strongest cases first)."""
        for c in survivors:
            self.sup_log_e[c] = max(self.sup_log_e[c], self.log_e(c))
        over = {c: self.sup_log_e[c] for c in survivors if self.sup_log_e[c] >= self.threshold}
        drop = keep_min_survivors(list(survivors), over, min_survivors)
        evidence = tuple(self._evidence(c, c in drop, c in over) for c in survivors)
        note = "" if self.any_difference else _NO_DIFFERENCE
        return Look(TEST_NAME, self.blocks, evidence, note=note)

    def _evidence(self, config: str, dropped: bool, over: bool) -> ConfigEvidence:
        k = len(self.configs)
        p = min(1.0, math.exp(-self.sup_log_e[config]))
        p_adj = min(1.0, k * p)
        if dropped:
            reason = f"worse than the leader: e = {math.exp(self.sup_log_e[config]):.4g} >= K/alpha"
        elif over:
            reason = "shown worse, kept to leave min_survivors"
        else:
            reason = "not shown worse"
        return ConfigEvidence(
            config=config,
            mean=self.sums[config] / self.blocks if self.blocks else float("nan"),
            blocks=self.blocks,
            statistic=math.exp(self.log_e(config)),
            p_value=p,
            p_adjusted=p_adj,
            dropped=dropped,
            reason=reason,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "blocks": self.blocks,
            "log_wealth": self.log_wealth,
            "sums": self.sums,
            "sup_log_e": self.sup_log_e,
            "any_difference": self.any_difference,
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Continue from a state written by ``to_json`` (already validated by the caller)."""
        self.blocks = int(data["blocks"])
        self.log_wealth = {c: [float(x) for x in v] for c, v in data["log_wealth"].items()}
        self.sums = {c: float(v) for c, v in data["sums"].items()}
        self.sup_log_e = {c: float(v) for c, v in data["sup_log_e"].items()}
        self.any_difference = bool(data["any_difference"])


def _opponents(keys: np.ndarray) -> np.ndarray:
    """Each survivor's opponent from past blocks only (``keys`` are signed running sums, larger
    is better): the leader, or the runner-up for the leader itself; ties go to the earlier
    configuration, so a replay picks the same."""
    order = np.lexsort((np.arange(len(keys)), -keys))
    leader = order[0]
    runner_up = order[1] if len(order) > 1 else leader
    opponents = np.full(len(keys), leader)
    opponents[leader] = runner_up
    return opponents


_NO_DIFFERENCE = (
    "undefined: every survivor scored the same on every block so far (a constant metric?); "
    "nothing can be dropped on this evidence"
)
