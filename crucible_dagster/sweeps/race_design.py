"""How a sweep's race maps onto trials: which trials a round runs, with which experiment, and
how their outcomes score the round's blocks. The standalone race (``sweeps.raced``) and the
Dagster race job's steps (``sweeps.race_steps``) share it, so both decide alike.

Over seeds a round runs each survivor's trial on each of the round's seeds, scored by
``sweep.metric``. Over the data (``sweeps.race_blocks``) it runs one trial per survivor,
``<trial>__round_<i>``, on the round's samples only (their ids written to the sweep's run
directory by the round's planner, read back by the trials' dataset)."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.racing.race import Race, RaceError
from crucible_dagster.racing.state import RACE_FILE
from crucible_dagster.runtime.driver import Run
from crucible_dagster.runtime.metrics import metric_mean
from crucible_dagster.sweeps.grid import Trial
from crucible_dagster.sweeps.race_blocks import (
    EXPERIMENT_BUDGET_SPENT,
    BlockScoreError,
    DataBlocks,
    SweepSpend,
    block_scores,
    data_blocks,
    race_seed,
    restricted_to,
    round_ids_path,
    round_trial,
    write_round_ids,
)
from crucible_dagster.sweeps.running import TrialOutcome


class RaceDesign:
    """The grid's configurations and the blocks they race on (seeds, or the data's blocks,
    which loads the dataset once)."""

    def __init__(self, experiment: Experiment, trials: Sequence[Trial]) -> None:
        assert experiment.sweep is not None
        self.experiment = experiment
        self.grid: dict[str, dict[str, Trial]] = {}
        for trial in trials:
            self.grid.setdefault(trial.config_id, {})[str(trial.seed)] = trial
        self.data: DataBlocks | None = None
        if experiment.sweep.race.block != "seeds":
            self.data = data_blocks(experiment, race_seed(experiment, trials))

    @property
    def on_data(self) -> bool:
        return self.data is not None

    @property
    def blocks(self) -> list[str]:
        if self.data is None:
            return [str(s) for s in self.experiment.seeds]
        return self.data.blocks

    def trials_for(self, configs: Sequence[str], blocks: Sequence[str], index: int) -> list[Trial]:
        """Round ``index``'s trials for ``configs`` on ``blocks``."""
        if self.data is None:
            return [self.grid[c][b] for b in blocks for c in configs]
        return [round_trial(self._base(c), index) for c in configs]

    def write_round(self, blocks: Sequence[str], index: int, sweep_dir: Path) -> None:
        """What the round's trials read before they run: over the data, its sample ids."""
        if self.data is not None:
            write_round_ids(self.data, blocks, index, sweep_dir)

    def scores(
        self,
        configs: Sequence[str],
        blocks: Sequence[str],
        index: int,
        by_id: Mapping[str, TrialOutcome],
    ) -> dict[str, list[float]]:
        """Each configuration's score on each block, from its trials' outcomes."""
        assert self.experiment.sweep is not None
        try:
            if self.data is None:
                metric = self.experiment.sweep.metric
                return {
                    c: [_score(_outcome(by_id, self.grid[c][b]), metric) for b in blocks]
                    for c in configs
                }
            data, experiment = self.data, self.experiment
            return {
                c: block_scores(
                    _outcome(by_id, round_trial(self._base(c), index)), experiment, data, blocks
                )
                for c in configs
            }
        except BlockScoreError as exc:
            raise RaceError(str(exc)) from None

    def _base(self, config: str) -> Trial:
        return next(iter(self.grid[config].values()))


def declared_blocks(experiment: Experiment) -> int | None:
    """How many blocks the race has, when the experiment says so without loading its data:
    its seeds, ``dataset.folds.k``, or ``dataset.sample.n`` (else ``limit``) for samples; None
    when only a load can tell."""
    assert experiment.sweep is not None
    block, dataset = experiment.sweep.race.block, experiment.dataset
    if block == "seeds":
        return len(experiment.seeds)
    if dataset is None:
        return None
    if block == "folds":
        return dataset.folds.k if dataset.folds is not None else None
    if dataset.sample is not None and dataset.sample.n is not None:
        return dataset.sample.n
    return dataset.limit


def most_trials(experiment: Experiment, trials: Sequence[Trial]) -> int | None:
    """The most trials the race can run (a progress bar's total): the grid's over seeds; over
    the data a trial per configuration and round, when the number of blocks is declared."""
    assert experiment.sweep is not None
    race = experiment.sweep.race
    if race.block == "seeds":
        return len(trials)
    blocks = declared_blocks(experiment)
    if blocks is None and race.max_blocks is None:
        return None
    most = race.max_rounds(blocks if blocks is not None else race.max_blocks or 0)
    return len({t.config_id for t in trials}) * most


def round_experiment(experiment: Experiment, index: int, sweep_dir: Path) -> Experiment:
    """The experiment round ``index``'s trials run with: over the data, restricted to the ids
    its planner wrote (no dataset load here: a Celery worker reads the ids file)."""
    assert experiment.sweep is not None
    if experiment.sweep.race.block == "seeds":
        return experiment
    return restricted_to(experiment, round_ids_path(sweep_dir, index))


def open_race(
    design: RaceDesign, sweep: Run, earlier: Sequence[Path], spend: SweepSpend | None
) -> Race:
    """The sweep's race, resumed from its ``race.json`` (a re-execution's from its latest
    ancestor's), its cost read from the sweep's ledger."""
    experiment = design.experiment
    assert sweep.path is not None and experiment.sweep is not None
    state = sweep.path / RACE_FILE
    _adopt_earlier_race(state, earlier)
    return Race(
        experiment.sweep.race,
        list(design.grid),
        design.blocks,
        direction=experiment.sweep.direction,
        state_path=state,
        spent=spend.cost if spend is not None else None,
    )


def sweep_spend(experiment: Experiment, sweep: Run) -> SweepSpend | None:
    """The sweep's ledger, when the experiment has a budget."""
    assert sweep.path is not None
    return SweepSpend(experiment, sweep.path) if experiment.budget is not None else None


def stop_for_budget(race: Race, why: str) -> None:
    """End the race because the experiment's budget is spent, saying so in ``race.json``."""
    race.stop(f"{EXPERIMENT_BUDGET_SPENT} ({why}) before round {len(race.record.rounds) + 1}")


def _outcome(by_id: Mapping[str, TrialOutcome], trial: Trial) -> TrialOutcome:
    found = by_id.get(trial.trial_id)
    if found is None:
        raise RaceError(f"trial {trial.trial_id}: the round has no outcome for it")
    return found


def _score(outcome: TrialOutcome, metric: str) -> float:
    """The trial's ``sweep.metric``: one number, or the mean of a list (per fold)."""
    return metric_mean(outcome.metrics, metric)


def _adopt_earlier_race(state: Path, earlier: Sequence[Path]) -> None:
    """A re-execution starts from its nearest ancestor's race record (``earlier`` is nearest
    first; checked when read)."""
    if state.exists():
        return
    for run_dir in earlier:
        found = run_dir / RACE_FILE
        if found.is_file() and not found.is_symlink():
            shutil.copyfile(found, state)
            return
