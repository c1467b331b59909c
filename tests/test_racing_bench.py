"""The racing simulation's baseline is Optuna's real rule: the closed-form Wilcoxon p equals
scipy's, and the replica prunes exactly where ``optuna.pruners.WilcoxonPruner`` does."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from benchmarks.racing_bench import (
    ROUND,
    SCIPY_UP_TO,
    WILCOXON_P,
    N,
    wilcoxon_less_p,
    wilcoxon_pruner,
)


@pytest.mark.slow
def test_closed_form_wilcoxon_equals_scipy() -> None:
    """Past SCIPY_UP_TO steps (below it scipy itself is called)."""
    rng = np.random.default_rng(5)
    for _ in range(200):
        n = int(rng.integers(SCIPY_UP_TO + 1, 400))
        diff = rng.choice([-1.0, 0.0, 1.0], size=n, p=rng.dirichlet([1, 1, 1]))
        ends = np.unique(rng.integers(SCIPY_UP_TO + 1, n + 1, size=4))
        expected = [
            stats.wilcoxon(diff[:e], alternative="less", zero_method="zsplit").pvalue for e in ends
        ]
        np.testing.assert_allclose(wilcoxon_less_p(diff, ends), expected, atol=1e-12)


def _optuna_race(scores: np.ndarray, order: list[int]) -> tuple[set[int], int]:
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # WilcoxonPruner is marked experimental
        pruner = optuna.pruners.WilcoxonPruner(p_threshold=WILCOXON_P)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    pruned, spent = set(), 0
    for c in order:
        trial = study.ask()
        for step in range(N):
            trial.report(float(scores[c, step]), step)
            spent += 1
            if (step + 1) % ROUND == 0 and trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                pruned.add(c)
                break
        else:
            study.tell(trial, float(scores[c].mean()))
    return pruned, spent


@pytest.mark.slow
def test_replica_prunes_where_optunas_wilcoxon_pruner_does() -> None:
    rng = np.random.default_rng(8)
    means = np.array([0.7, 0.66, 0.55, 0.5, 0.3])
    replica = wilcoxon_pruner(seed=3)
    order_rng = np.random.default_rng(3)  # the replica's own order, drawn the same way
    for _ in range(3):
        scores = (rng.random((len(means), N)) < means[:, None]).astype(float)
        order = order_rng.permutation(len(means)).tolist()
        outcome = replica(scores, {0})
        pruned, spent = _optuna_race(scores, order)
        assert outcome.evaluations == spent
        assert outcome.dropped_a_best == (0 in pruned)
