"""A race played as steps, so a round's evaluations can run anywhere (the Dagster race job puts
each group of a round's trials in its own step, on a Celery worker when the executor is Celery):

1. ``plan_round``: the next round's blocks and trials (over the data, the round's sample ids
   written to the sweep's run directory), or why the race is over;
2. the trials run through the one trial loop (``run_trials``) with ``planned_experiment``;
3. ``look_at_round``: their outcomes score the blocks, the test looks, the round is recorded.

``race.json`` carries the race between the steps (each step reads it back and rewrites it
whole), so a step on another machine, or a re-execution from failure, continues from the last
finished round and decides the same."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.racing.race import Race
from crucible_dagster.racing.state import RoundRecord
from crucible_dagster.runtime.driver import Run
from crucible_dagster.sweeps.grid import Trial
from crucible_dagster.sweeps.race_blocks import SweepSpend, restricted_to, round_ids_path
from crucible_dagster.sweeps.race_design import RaceDesign, open_race, stop_for_budget, sweep_spend
from crucible_dagster.sweeps.running import TrialOutcome


@dataclass(frozen=True)
class PlannedRound:
    """Round ``index``'s trials, the ids file they read (over the data), or why it is not
    played (``ended``: the race's finish reason)."""

    index: int
    trials: list[Trial] = field(default_factory=list)
    ids_file: str | None = None
    ended: str = ""

    def payload(self, trials: Sequence[Trial]) -> dict[str, Any]:
        """What a step running some of the round's trials receives (JSON)."""
        return {
            "index": self.index,
            "ids_file": self.ids_file,
            "trials": [t.to_dict() for t in trials],
        }


def planned_experiment(experiment: Experiment, payload: dict[str, Any]) -> Experiment:
    """The experiment a round's trials run with: over the data, on the planned samples (read
    from the planner's ids file, which may be an ancestor run's on a re-execution)."""
    ids_file = payload.get("ids_file")
    return restricted_to(experiment, Path(ids_file)) if ids_file else experiment


@dataclass
class _Opened:
    design: RaceDesign
    spend: SweepSpend | None
    race: Race


def _open(
    experiment: Experiment, trials: Sequence[Trial], sweep: Run, earlier: Sequence[Path]
) -> _Opened:
    design = RaceDesign(experiment, trials)
    spend = sweep_spend(experiment, sweep)
    return _Opened(design, spend, open_race(design, sweep, earlier, spend))


def plan_round(
    experiment: Experiment, trials: Sequence[Trial], sweep: Run, earlier: Sequence[Path] = ()
) -> PlannedRound:
    """The next round, or the reason there is none (blocks or budget spent, one survivor)."""
    assert sweep.path is not None
    with sweep:  # an error ends the sweep's record failed, with its message
        opened = _open(experiment, trials, sweep, earlier)
        race, spend = opened.race, opened.spend
        index = len(race.record.rounds) + 1
        why = spend.exhausted() if spend is not None and not race.record.finished else None
        if why is not None:
            stop_for_budget(race, why)
        blocks = race.next_round()
        if not blocks:
            return PlannedRound(index, ended=race.record.finish_reason)
        opened.design.write_round(blocks, index, sweep.path)
        race.mark_round_start(spend.cost() if spend is not None else 0.0, sweep.path.name)
        ids = round_ids_path(sweep.path, index) if opened.design.on_data else None
        round_trials = opened.design.trials_for(race.record.survivors, blocks, index)
        return PlannedRound(index, round_trials, str(ids) if ids else None)


def look_at_round(
    experiment: Experiment,
    trials: Sequence[Trial],
    sweep: Run,
    outcomes: Sequence[TrialOutcome],
    earlier: Sequence[Path] = (),
) -> tuple[Race, RoundRecord | None]:
    """Score the planned round from its trials' ``outcomes`` and play it; None when the race
    was over (or the experiment's budget stopped a trial: the race ends, saying so)."""
    with sweep:
        opened = _open(experiment, trials, sweep, earlier)
        race, spend = opened.race, opened.spend
        if race.record.finished:
            return race, None
        if any(o.status == "budget_exhausted" for o in outcomes):
            why = spend.exhausted() if spend is not None else None
            stop_for_budget(race, why or "a trial ended budget_exhausted")
            return race, None
        blocks = race.next_blocks()
        index = len(race.record.rounds) + 1
        by_id = {o.trial.trial_id: o for o in outcomes}
        scores = opened.design.scores(race.record.survivors, blocks, index, by_id)
        cost = 0.0
        if spend is not None:
            record = race.record
            cost = spend.since(record.round_start_cost, record.round_planned_in, earlier)
        return race, race.play_round(blocks, scores, cost=cost)
