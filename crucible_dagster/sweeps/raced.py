"""``sweep.strategy: racing``: the sweep's trials run round by round through the one trial loop
(``run_trials``), and after each round the race (``crucible_dagster.racing``) drops the
configurations shown worse, so their remaining seeds never run.

Blocks are seeds (a configuration's score on a block is its trial's ``sweep.metric``, the mean
over folds when the metric is a list), or the dataset's samples or folds (``sweeps.race_blocks``:
a round's trial per survivor, on the round's samples only). The race stops when its
``racing.budget`` or the experiment's ``budget:`` is spent, and says which.
``race.json`` in the sweep's run directory records every round; a sweep resumed in the same
directory, or re-executed from failure (an ``earlier`` run's ``race.json`` and completed trials
are read back), reaches the same decisions without rerunning what already ran."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.racing.race import Evaluate, Race, RaceError, RaceResult
from crucible_dagster.racing.state import RACE_FILE, RoundRecord
from crucible_dagster.runtime.driver import Run, StageFailure
from crucible_dagster.runtime.metrics import numbers_at
from crucible_dagster.runtime.registry import Registry
from crucible_dagster.runtime.telemetry import Sink
from crucible_dagster.sweeps.grid import Trial
from crucible_dagster.sweeps.race_blocks import (
    EXPERIMENT_BUDGET_SPENT,
    BlockScoreError,
    DataBlocks,
    SweepSpend,
    block_scores,
    data_blocks,
    race_seed,
    round_experiment,
    round_trial,
)
from crucible_dagster.sweeps.running import TrialOutcome, run_trials


@dataclass
class RacedTrials:
    """What a raced sweep ran: every outcome, the failures, the race (``None`` when a failed
    trial stopped it before its first look) and the trials the race never needed."""

    outcomes: list[TrialOutcome] = field(default_factory=list)
    failures: list[tuple[Trial, StageFailure]] = field(default_factory=list)
    race: RaceResult | None = None
    skipped: list[Trial] = field(default_factory=list)
    #: the grid's trials whose configuration was raced round by round on the data (their
    #: evaluations are the ``<trial>__round_<i>`` trials)
    raced_on_data: list[Trial] = field(default_factory=list)

    @property
    def budget_spent(self) -> bool:
        """Whether the experiment's budget stopped the race (the sweep ends budget_exhausted)."""
        return self.race is not None and self.race.record.finish_reason.startswith(
            EXPERIMENT_BUDGET_SPENT
        )

    def survivors_outcomes(self) -> list[TrialOutcome]:
        """The outcomes the final comparison is made on: the survivors' (complete blocks)."""
        if self.race is None:
            return self.outcomes
        keep = set(self.race.survivors)
        return [o for o in self.outcomes if o.trial.config_id in keep]


class _RoundFailed(Exception):
    """A trial of the round failed: the race cannot score its configuration on that seed."""


class _BudgetSpent(Exception):
    """The experiment's budget is spent: the round cannot be scored in full."""


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
    """Race the grid's configurations over its blocks; each round's trials through
    ``run_trials`` (at most ``rounds`` more rounds when given: a Dagster round step plays one)."""
    assert sweep.path is not None and experiment.sweep is not None
    loop = _TrialLoop(experiment, sweep, registry, sinks, orchestrator, earlier, on_outcome)
    # an error (the dataset, a race record of another race, unusable scores) ends the sweep
    # ``failed`` with its message, never leaves it running
    with sweep:
        race, evaluate, on_data = _planned(loop, trials)
        try:
            loop.done.race = race.run(evaluate, on_round, rounds)
        except _RoundFailed:
            return loop.done
        except _BudgetSpent as exc:
            index = len(race.record.rounds) + 1
            race.stop(f"{EXPERIMENT_BUDGET_SPENT} ({exc}) before round {index}")
            loop.done.race = RaceResult(race.record)
    sort_trials(loop.done, trials, on_data=on_data)
    return loop.done


def _planned(loop: _TrialLoop, trials: Sequence[Trial]) -> tuple[Race, Evaluate, bool]:
    """The race (resumed from an earlier run's record when there is one) and how it evaluates."""
    experiment, sweep = loop.experiment, loop.sweep
    assert sweep.path is not None and experiment.sweep is not None
    state = sweep.path / RACE_FILE
    _adopt_earlier_race(state, loop.earlier)
    grid = _by_config_and_seed(trials)
    if experiment.sweep.race.block == "seeds":
        race = sweep_race(experiment, list(grid), state, None, loop.spend)
        return race, _on_seeds(loop, grid), False
    data = data_blocks(experiment, race_seed(experiment, trials))
    race = sweep_race(experiment, list(grid), state, data, loop.spend)
    return race, _on_data(loop, grid, data, race), True


def sort_trials(done: RacedTrials, trials: Sequence[Trial], *, on_data: bool) -> None:
    """Which of the grid's trials the race never needed (``skipped``) and, on the data, which
    configurations it raced (their rounds' trials ran instead of them)."""
    if not on_data:
        ran = {o.trial.trial_id for o in done.outcomes}
        done.skipped = [t for t in trials if t.trial_id not in ran]
        return
    raced = {o.trial.config_id for o in done.outcomes}
    done.skipped = [t for t in trials if t.config_id not in raced]
    done.raced_on_data = [t for t in trials if t.config_id in raced]


class _TrialLoop:
    """One round's trials through ``run_trials``, every outcome kept in ``done``; a failed
    trial or a spent experiment budget ends the race's rounds."""

    def __init__(
        self,
        experiment: Experiment,
        sweep: Run,
        registry: Registry | None,
        sinks: Iterable[Sink],
        orchestrator: str,
        earlier: Sequence[Path],
        on_outcome: Callable[[TrialOutcome], None] | None,
    ) -> None:
        assert sweep.path is not None
        self.experiment, self.sweep, self.registry = experiment, sweep, registry
        self.sinks, self.orchestrator, self.earlier = list(sinks), orchestrator, earlier
        self.on_outcome = on_outcome
        self.spend = SweepSpend(experiment, sweep.path) if experiment.budget is not None else None
        self.done = RacedTrials()

    def run(self, experiment: Experiment, trials: list[Trial]) -> dict[str, TrialOutcome]:
        why = self.spend.exhausted() if self.spend is not None else None
        if why is not None:
            raise _BudgetSpent(why)
        outcomes, failures = run_trials(
            experiment,
            trials,
            self.sweep,
            registry=self.registry,
            sinks=self.sinks,
            orchestrator=self.orchestrator,
            earlier=self.earlier,
            on_outcome=self.on_outcome,
        )
        self.done.outcomes.extend(outcomes)
        self.done.failures.extend(failures)
        if failures:
            raise _RoundFailed()
        if any(o.status == "budget_exhausted" for o in outcomes):
            why = self.spend.exhausted() if self.spend is not None else None
            raise _BudgetSpent(why or "a trial ended budget_exhausted")
        return {o.trial.trial_id: o for o in outcomes}


Grid = dict[str, dict[str, Trial]]


def _on_seeds(loop: _TrialLoop, grid: Grid) -> Evaluate:
    """Each survivor's trial on each of the round's seeds, scored by ``sweep.metric``."""
    assert loop.experiment.sweep is not None
    metric = loop.experiment.sweep.metric

    def evaluate(configs: Sequence[str], blocks: Sequence[str]) -> Mapping[str, list[float]]:
        by_id = loop.run(loop.experiment, [grid[c][b] for b in blocks for c in configs])
        return {c: [_score(by_id[grid[c][b].trial_id], metric) for b in blocks] for c in configs}

    return evaluate


def _on_data(loop: _TrialLoop, grid: Grid, data: DataBlocks, race: Race) -> Evaluate:
    """One trial per survivor on the round's samples, scored block by block."""
    experiment, sweep_dir = loop.experiment, loop.sweep.path
    assert sweep_dir is not None

    def evaluate(configs: Sequence[str], blocks: Sequence[str]) -> Mapping[str, list[float]]:
        index = len(race.record.rounds) + 1
        restricted = round_experiment(experiment, data, blocks, index, sweep_dir)
        ran = {c: round_trial(next(iter(grid[c].values())), index) for c in configs}
        by_id = loop.run(restricted, list(ran.values()))
        try:
            return {
                c: block_scores(by_id[t.trial_id], experiment, data, blocks) for c, t in ran.items()
            }
        except BlockScoreError as exc:
            raise RaceError(str(exc)) from None

    return evaluate


def sweep_race(
    experiment: Experiment,
    configs: list[str],
    state: Path | None,
    data: DataBlocks | None = None,
    spend: SweepSpend | None = None,
) -> Race:
    """The race of a sweep: its configurations over its seeds (or ``data``'s blocks), recorded
    at ``state``, its cost read from the sweep's ledger."""
    assert experiment.sweep is not None
    blocks = [str(s) for s in experiment.seeds] if data is None else data.blocks
    return Race(
        experiment.sweep.race,
        configs,
        blocks,
        direction=experiment.sweep.direction,
        state_path=state,
        spent=spend.cost if spend is not None else None,
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
        "block": record.settings.get("block"),
        "alpha": record.settings.get("alpha"),
        "survivors": list(record.survivors),
        "finish_reason": record.finish_reason,
        "evaluations": record.evaluations,
        "cost": record.cost,
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
