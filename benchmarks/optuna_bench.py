"""Optuna pruners with known truth (issue 25): our ``racing`` pruner beside Optuna's
``WilcoxonPruner`` and ``MedianPruner`` (and no pruner) on the very same studies, each a real
Optuna study driven by ask/tell as ``sweeps.studied`` drives it (the pruner objects are the
ones a sweep builds; only the trials' runs are simulated).

Each study: ``T`` trials in a row, trial ``i`` a configuration with true ability ``theta_i``;
its score on block (seed) ``b`` is its share right of ``Q`` questions, question ``q`` right with
probability ``sigmoid(theta_i - d_bq)``, ``d_bq ~ N(0, 1)`` shared by every trial (so trials are
paired on blocks, as seeds of one benchmark are). Measured per pruner: how often the true best
trial is pruned (with all trials equal every one is a best, so pruning any is the error), how
often the study's best complete trial is the true best, and the share of ``T x B`` block runs
spent. ``python -m benchmarks optuna`` runs this suite alone.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from benchmarks.harness import Row, Timing, paired
from crucible_dagster import Experiment
from crucible_dagster.racing.settings import RacingSettings

T, B, Q = 12, 40, 10
ALPHA, WILCOXON_P = 0.05, 0.1


@dataclass(frozen=True)
class Scenario:
    name: str
    studies: int
    draw: Callable[[np.random.Generator], np.ndarray]


def _one_best(rng: np.random.Generator) -> np.ndarray:
    theta = 1.0 - rng.uniform(0.3, 2.5, T)
    theta[rng.integers(T)] = 1.0  # the best comes at a random point of the study
    return theta


SCENARIOS = (
    Scenario("one best among 12, gaps 0.3-2.5 logits", 30, _one_best),
    Scenario("all 12 equal", 20, lambda rng: np.ones(T)),
)


def _scores(rng: np.random.Generator, theta: np.ndarray) -> np.ndarray:
    difficulty = rng.normal(0, 1, (B, Q))
    p = special.expit(theta[:, None, None] - difficulty[None])
    return (rng.random(p.shape) < p).mean(axis=2)  # T x B shares right


def _pruners() -> dict[str, tuple[Callable[[], Any], int, bool]]:
    """name -> (the pruner, blocks between looks, whether it reads the running mean)."""
    import optuna

    from crucible_dagster.sweeps.race_pruner import RacingPruner

    racing = RacingSettings(first_look=5, round_size=5, alpha=ALPHA)
    return {
        "racing (ours)": (lambda: RacingPruner(racing, T, "maximize"), 5, False),
        f"WilcoxonPruner p={WILCOXON_P}": (
            lambda: optuna.pruners.WilcoxonPruner(p_threshold=WILCOXON_P),
            1,
            False,
        ),
        "MedianPruner": (optuna.pruners.MedianPruner, 1, True),
        "none": (optuna.pruners.NopPruner, B, False),
    }


def run_study(
    scores: np.ndarray, make: Callable[[], Any], every: int, mean: bool
) -> tuple[set[int], int, int | None]:
    """One study through ask/tell: the trials pruned, block runs spent, the best complete."""
    import optuna

    from crucible_dagster.sweeps.race_pruner import POOL_ATTR, pool_at_start

    study = optuna.create_study(direction="maximize", pruner=make())
    pruned: set[int] = set()
    spent = 0
    for i in range(T):
        trial = study.ask()
        trial.set_user_attr(POOL_ATTR, pool_at_start(study))
        for b in range(B):
            spent += 1
            value = scores[i, : b + 1].mean() if mean else scores[i, b]
            trial.report(float(value), b)
            if (b + 1) % every == 0 and b + 1 < B and trial.should_prune():
                pruned.add(i)
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(trial, float(scores[i].mean()))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value or 0.0).number if complete else None
    return pruned, spent, best


def _rate(hits: int, n: int) -> str:
    """A share with its Wilson 95% interval."""
    if n == 0:
        return "n/a"
    p, z = hits / n, 1.96
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return f"{p:6.1%} [{max(0.0, centre - half):.1%}, {min(1.0, centre + half):.1%}]"


def study() -> str:
    """The table ``make bench`` prints."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    lines = [
        f"{T} trials x {B} seeds (blocks), each block's score the share right of {Q} paired "
        f"questions; racing at alpha {ALPHA} (first look 5, rounds of 5, K = {T}); "
        "Optuna's pruners with their defaults (Wilcoxon p_threshold 0.1)",
    ]
    header = (
        f"{'scenario':40} {'pruner':26} {'best pruned':>26} {'picked best':>26} {'runs spent':>11}"
    )
    lines.append(header)
    for scenario in SCENARIOS:
        problems = []
        rng = np.random.default_rng(20261203)
        for _ in range(scenario.studies):
            theta = scenario.draw(rng)
            problems.append((theta, _scores(rng, theta)))
        for name, (make, every, mean) in _pruners().items():
            best_pruned = picked = spent = 0
            for theta, scores in problems:
                bests = set(np.flatnonzero(theta == theta.max()).tolist())
                pruned, used, best = run_study(scores, make, every, mean)
                best_pruned += bool(pruned & bests)
                picked += best in bests
                spent += used
            n = scenario.studies
            lines.append(
                f"{scenario.name:40} {name:26} {_rate(best_pruned, n):>26} "
                f"{_rate(picked, n):>26} {spent / (n * T * B):>10.1%}"
            )
    return "\n".join(lines)


LEVELS = [0.5 + i / 100 for i in range(20)]
SEEDS = [1, 2, 3, 4, 5]


def _sweep(strategy: str) -> Experiment:
    """20 configurations x 5 seeds of the lightest stage: a grid, or a study of 20 trials."""
    sweep: dict[str, Any] = {"metric": "score", "per_sample": False}
    data: dict[str, Any] = {"id": f"bench_{strategy}", "seeds": SEEDS, "seed": 1}
    if strategy == "optuna":
        space = [{"name": "level", "kind": "float", "low": 0.5, "high": 0.7}]
        sweep |= {"strategy": "optuna", "optuna": {"n_trials": 20, "search_space": space}}
    else:
        data["parameters"] = {"level": LEVELS}
    data["sweep"] = sweep
    data["pipeline"] = [
        {
            "name": "score",
            "module": "benchmarks.stages:LightScore",
            "options": {"level": "${params.level}"},
        }
    ]
    return Experiment.model_validate(data)


def study_cost_rows() -> list[Row]:
    """A 20-trial TPE study on 5 seeds against a 20-point grid on the same seeds (100 runs
    each, standalone, the same stage): what asking, reporting and telling Optuna (SQLite in the
    run directory) add per run."""
    import tempfile

    from crucible_dagster.sweeps.standalone import run_sweep

    study, grid = _sweep("optuna"), _sweep("grid")
    runs = 20 * len(SEEDS)
    with tempfile.TemporaryDirectory() as artifacts:
        counter = iter(range(1_000_000))

        def studied() -> None:
            run_sweep(study, run_id=f"s{next(counter)}", artifacts=artifacts)

        def gridded() -> None:
            run_sweep(grid, run_id=f"g{next(counter)}", artifacts=artifacts)

        ours, base, busy = paired(studied, gridded, repeats=3)
    return [
        Row(
            f"TPE study, 20 trials x 5 seeds, per run ({runs} runs)",
            Timing([w / runs for w in ours.wall], [c / runs for c in ours.cpu]),
            Timing([w / runs for w in base.wall], [c / runs for c in base.cpu]),
            "a 20-point grid on the same seeds",
            "<=2.0x",
            busy,
        )
    ]


if __name__ == "__main__":
    print(study())
