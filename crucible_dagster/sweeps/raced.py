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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from typing_extensions import Unpack

from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.racing.race import RaceResult
from crucible_dagster.racing.state import RoundRecord
from crucible_dagster.runtime.driver import Run, StageFailure
from crucible_dagster.sweeps.grid import Trial
from crucible_dagster.sweeps.race_blocks import EXPERIMENT_BUDGET_SPENT
from crucible_dagster.sweeps.race_design import (
    RaceDesign,
    open_race,
    round_experiment,
    stop_for_budget,
    sweep_spend,
)
from crucible_dagster.sweeps.running import TrialHooks, TrialOutcome, run_trials


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
    on_round: Callable[[RoundRecord], None] | None = None,
    rounds: int | None = None,
    **hooks: Unpack[TrialHooks],
) -> RacedTrials:
    """Race the grid's configurations over its blocks; each round's trials through
    ``run_trials`` (at most ``rounds`` more rounds when given: a Dagster round step plays one)."""
    assert sweep.path is not None and experiment.sweep is not None
    earlier = hooks.get("earlier", ())
    loop = _TrialLoop(experiment, sweep, hooks)
    # an error (the dataset, a race record of another race, unusable scores) ends the sweep
    # ``failed`` with its message, never leaves it running
    with sweep:
        design = RaceDesign(experiment, trials)
        race = open_race(design, sweep, earlier, loop.spend)

        def evaluate(configs: Sequence[str], blocks: Sequence[str]) -> dict[str, list[float]]:
            index = len(race.record.rounds) + 1
            assert sweep.path is not None
            design.write_round(blocks, index, sweep.path)
            run_with = round_experiment(experiment, index, sweep.path)
            by_id = loop.run(run_with, design.trials_for(configs, blocks, index))
            return design.scores(configs, blocks, index, by_id)

        def announce(record: RoundRecord) -> None:
            """Each round's end as a ``race_round`` event of the sweep: who survives, how many
            were dropped, what the round cost."""
            sweep.telemetry.emit(
                "race_round",
                round=record.index,
                trials=len(record.survivors),
                count=len(record.dropped),
                cost=record.cost,
            )
            if on_round is not None:
                on_round(record)

        try:
            loop.done.race = race.run(evaluate, announce, rounds)
        except _RoundFailed:
            return loop.done
        except _BudgetSpent as exc:
            stop_for_budget(race, str(exc))
            loop.done.race = RaceResult(race.record)
    sort_trials(loop.done, trials, on_data=design.on_data)
    return loop.done


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

    def __init__(self, experiment: Experiment, sweep: Run, hooks: TrialHooks) -> None:
        assert sweep.path is not None
        self.experiment, self.sweep = experiment, sweep
        # every round hands the same sinks on: an iterator would be spent after the first
        self.hooks: TrialHooks = {**hooks, "sinks": list(hooks.get("sinks", ()))}
        self.spend = sweep_spend(experiment, sweep)
        self.done = RacedTrials()

    def run(self, experiment: Experiment, trials: list[Trial]) -> dict[str, TrialOutcome]:
        why = self.spend.exhausted() if self.spend is not None else None
        if why is not None:
            raise _BudgetSpent(why)
        outcomes, failures = run_trials(experiment, trials, self.sweep, **self.hooks)
        self.done.outcomes.extend(outcomes)
        self.done.failures.extend(failures)
        if failures:
            raise _RoundFailed()
        if any(o.status == "budget_exhausted" for o in outcomes):
            why = self.spend.exhausted() if self.spend is not None else None
            raise _BudgetSpent(why or "a trial ended budget_exhausted")
        return {o.trial.trial_id: o for o in outcomes}


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
