"""The Optuna pruner simulation (``benchmarks/optuna_bench.py``) drives real studies: on a
constructed study the racing pruner prunes exactly the trials the closed form says, where the
closed form says, and never the best."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import optuna_bench as bench
from crucible_dagster.racing.sequential import LAMBDAS

pytest.importorskip("optuna")


def test_the_racing_pruner_prunes_a_zero_scorer_after_the_best_where_the_closed_form_says() -> None:
    scores = np.full((bench.T, bench.B), 0.5)
    scores[0] = 1.0  # the best comes first and completes
    scores[3] = 0.0  # against it, every block is Y = 1: wealth (1 + lam)^n
    make, every, mean = bench._pruners()["racing (ours)"]
    pruned, spent, best = bench.run_study(scores, make, every, mean)
    threshold = bench.T / bench.ALPHA
    looks = range(every, bench.B, every)
    first = next(n for n in looks if np.mean([(1 + lam) ** n for lam in LAMBDAS]) >= threshold)
    # trials scoring 0.5 against the best: Y = 0.5 per block, (1 + lam / 2)^n
    half = next(
        (n for n in looks if np.mean([(1 + lam / 2) ** n for lam in LAMBDAS]) >= threshold), None
    )
    assert 0 not in pruned and best == 0
    assert 3 in pruned
    others = set(range(1, bench.T)) - {3}
    assert (pruned >= others) if half is not None else not (pruned & others)
    runs_of_3 = first
    full = bench.T * bench.B
    assert spent == full - (bench.B - runs_of_3) - sum(
        bench.B - half for _ in others if half is not None
    )
