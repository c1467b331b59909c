"""``sweep.strategy: racing``: the sweep's trials run round by round through the one trial loop
(``run_trials``), and after each round the race (``crucible_dagster.racing``) drops the
configurations shown worse, so their remaining seeds never run.

Blocks are seeds: a configuration's score on a block is its trial's ``sweep.metric`` (the mean
over folds when the metric is a list). ``race.json`` in the sweep's run directory records every
round; a sweep resumed in the same directory, or re-executed from failure (an ``earlier`` run's
``race.json`` and completed trials are read back), reaches the same decisions without rerunning
what already ran."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.racing.race import Race, RaceResult
from crucible_dagster.racing.state import RACE_FILE, RoundRecord
from crucible_dagster.runtime.driver import Run, StageFailure
from crucible_dagster.runtime.metrics import numbers_at
from crucible_dagster.runtime.registry import Registry
from crucible_dagster.runtime.telemetry import Sink
from crucible_dagster.sweeps.grid import Trial
from crucible_dagster.sweeps.running import TrialOutcome, run_trials


@dataclass
class RacedTrials:
    """What a raced sweep ran: every outcome, the failures, the race (``None`` when a failed
    trial stopped it before its first look) and the trials the race never needed."""

    outcomes: list[TrialOutcome] = field(default_factory=list)
    failures: list[tuple[Trial, StageFailure]] = field(default_factory=list)
    race: RaceResult | None = None
    skipped: list[Trial] = field(default_factory=list)

    def survivors_outcomes(self) -> list[TrialOutcome]:
        """The outcomes the final comparison is made on: the survivors' (complete blocks)."""
        if self.race is None:
            return self.outcomes
        keep = set(self.race.survivors)
        return [o for o in self.outcomes if o.trial.config_id in keep]


class _RoundFailed(Exception):
    """A trial of the round failed: the race cannot score its configuration on that seed."""


def race_trials(
    experiment: Experiment,
    trials: Sequence[Trial],
    sweep: Run,
    *,
    registry: Registry | None = None,
    sinks: Iterable[Sink] = (),
    orchestrator: str = "standalone",
    earlier: Sequence[Path] = (),
    on_outcome: Callable[[TrialOutcome], None] | None = None,
    on_round: Callable[[RoundRecord], None] | None = None,
    rounds: int | None = None,
) -> RacedTrials:
    """Race the grid's configurations over its seeds; each round's trials through
    ``run_trials`` (at most ``rounds`` more rounds when given: a Dagster round step plays one)."""
    assert sweep.path is not None and experiment.sweep is not None
    grid = _by_config_and_seed(trials)
    state = sweep.path / RACE_FILE
    _adopt_earlier_race(state, earlier)
    race = sweep_race(experiment, list(grid), state)
    done = RacedTrials()
    metric = experiment.sweep.metric

    def evaluate(configs: Sequence[str], blocks: Sequence[str]) -> Mapping[str, list[float]]:
        round_trials = [grid[c][b] for b in blocks for c in configs]
        outcomes, failures = run_trials(
            experiment,
            round_trials,
            sweep,
            registry=registry,
            sinks=sinks,
            orchestrator=orchestrator,
            earlier=earlier,
            on_outcome=on_outcome,
        )
        done.outcomes.extend(outcomes)
        done.failures.extend(failures)
        if failures:
            raise _RoundFailed()
        by_id = {o.trial.trial_id: o for o in outcomes}
        return {c: [_score(by_id[grid[c][b].trial_id], metric) for b in blocks] for c in configs}

    try:
        done.race = race.run(evaluate, on_round, rounds)
    except _RoundFailed:
        return done
    ran = {o.trial.trial_id for o in done.outcomes}
    done.skipped = [t for t in trials if t.trial_id not in ran]
    return done


def sweep_race(experiment: Experiment, configs: list[str], state: Path | None) -> Race:
    """The race of a sweep: its configurations over its seeds, recorded at ``state``."""
    assert experiment.sweep is not None
    return Race(
        experiment.sweep.race,
        configs,
        [str(s) for s in experiment.seeds],
        direction=experiment.sweep.direction,
        state_path=state,
    )


def _by_config_and_seed(trials: Sequence[Trial]) -> dict[str, dict[str, Trial]]:
    grid: dict[str, dict[str, Trial]] = {}
    for trial in trials:
        grid.setdefault(trial.config_id, {})[str(trial.seed)] = trial
    return grid


def _score(outcome: TrialOutcome, metric: str) -> float:
    """The trial's ``sweep.metric``: one number, or the mean of a list (per fold)."""
    values = numbers_at(outcome.metrics, metric)
    return float(sum(values) / len(values))


def _adopt_earlier_race(state: Path, earlier: Sequence[Path]) -> None:
    """A re-execution starts from its latest ancestor's race record (checked when read)."""
    if state.exists():
        return
    for run_dir in reversed(list(earlier)):
        found = run_dir / RACE_FILE
        if found.is_file() and not found.is_symlink():
            shutil.copyfile(found, state)
            return


def race_summary(raced: RacedTrials) -> dict[str, Any]:
    """The race for the sweep's record and reports: rounds, who was dropped when and why,
    evaluations spent against the full grid."""
    if raced.race is None:
        return {"finished": False, "reason": "a trial failed before the race could decide"}
    record = raced.race.record
    grid_total = len(record.configs) * len(record.block_order)
    return {
        "method": record.method,
        "alpha": record.settings.get("alpha"),
        "survivors": list(record.survivors),
        "finish_reason": record.finish_reason,
        "evaluations": record.evaluations,
        "grid_evaluations": grid_total,
        "share_of_grid": record.evaluations / grid_total if grid_total else None,
        "skipped_trials": len(raced.skipped),
        "rounds": [
            {
                "index": r.index,
                "blocks": r.blocks,
                "survivors": r.survivors,
                "dropped": r.dropped,
                "evidence": r.look.get("evidence", []),
                "note": r.look.get("note", ""),
            }
            for r in record.rounds
        ],
    }
