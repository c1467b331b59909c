"""Our racing test as an Optuna pruner: a trial is pruned when the sequential test
(``racing.pool``) shows it worse than the best of the trials completed when it started, on the
same seeds. Unlike Optuna's ``WilcoxonPruner`` (a p below its threshold at any step, without a
correction for the repeated looks or the number of trials), the chance of pruning a best trial
is at most ``sweep.racing.alpha`` over all looks and all ``n_trials`` trials.

Intermediate values are the trial's score on each seed (``step`` = the seed's index); the pool
is recorded in the trial's user attribute ``crucible_pool`` when it starts."""

from __future__ import annotations

from typing import Any, Literal

import optuna

from crucible_dagster.racing.pool import PoolEvidence, pool_evidence
from crucible_dagster.racing.settings import RacingSettings

POOL_ATTR = "crucible_pool"


class RacingPruner(optuna.pruners.BasePruner):
    """Prune at a round's end (``first_look`` seeds, then every ``round_size``) when
    ``e >= n_trials / alpha`` against the trial's pool."""

    def __init__(
        self, settings: RacingSettings, n_trials: int, direction: Literal["maximize", "minimize"]
    ) -> None:
        self.settings = settings
        self.n_trials = n_trials
        self.direction = direction
        #: trial number -> the evidence of its last look (read by the sweep for its record)
        self.evidence: dict[int, PoolEvidence] = {}

    def looks(self, blocks: int) -> list[int]:
        """The block counts the test looks at."""
        first, size = self.settings.first_look, self.settings.round_size
        return [k for k in range(first, blocks + 1) if (k - first) % size == 0]

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        steps = sorted(trial.intermediate_values)
        if len(steps) < self.settings.first_look:
            return False
        members = set(trial.user_attrs.get(POOL_ATTR) or [])
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        pool = [
            [t.intermediate_values[s] for s in steps]
            for t in complete
            if t.number in members and all(s in t.intermediate_values for s in steps)
        ]
        if not pool:
            return False
        evidence = pool_evidence(
            [trial.intermediate_values[s] for s in steps],
            pool,
            looks=self.looks(len(steps)),
            trials=self.n_trials,
            alpha=self.settings.alpha,
            score_range=self.settings.score_range,
            direction=self.direction,
        )
        self.evidence[trial.number] = evidence
        return evidence.prune


def pool_at_start(study: Any) -> list[int]:
    """The trials a new trial is raced against: those complete now."""
    return [
        t.number
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    ]
