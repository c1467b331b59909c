"""``sweep.strategy: racing`` as one Dagster run whose rounds are steps.

``plan_race`` plans round 1; each round's trials run in ``round_<i>_trials`` steps (groups of
``sweep.trials_per_step``, mapped: under the multiprocess or Celery executor a round's
evaluations spread over processes or workers); ``race_round_<i>`` collects them, looks, records
the round (survivors, dropped configurations and their evidence as step metadata) and plans the
next. The graph is static, with as many rounds as the race can take (at most
``MAX_ROUND_STEPS``; the last round step plays whatever is left in its own process); once the
race has ended the remaining rounds plan no trials and end at once. ``race.json`` in the run
directory carries the race from step to step (``sweeps.race_steps``), so "Re-execute from
failure" continues from the last finished round with the same decisions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from crucible_dagster import Experiment, Registry
from crucible_dagster.dagster_plugin.io_manager import IO_MANAGER_KEY
from crucible_dagster.dagster_plugin.ops import dagster_log_sink, dagster_run, parent_run_id
from crucible_dagster.dagster_plugin.sweep import (
    RESULT_OUT,
    Compose,
    _ancestor_runs,
    _batch_key,
    _sweep_op,
    compare_op,
    fail_sweep,
    group_output,
    run_trial_group,
    tag_sweep_run,
)
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator
from crucible_dagster.experiment.ir import step_size
from crucible_dagster.runtime.driver import Run
from crucible_dagster.sweeps.grid import Trial, expand_grid
from crucible_dagster.sweeps.running import TrialOutcome

if TYPE_CHECKING:
    from crucible_dagster.racing.state import RaceRecord, RoundRecord
    from crucible_dagster.sweeps.raced import RacedTrials

#: the planning ops' dynamic output: one per group of the next round's trials
TRIALS_OUT = "trials"

#: round steps in the static graph; a race that could take more plays the rest in the last one
MAX_ROUND_STEPS = 40


def round_steps(experiment: Experiment) -> int:
    """Steps for the most rounds the race can take; over the dataset's samples, as many as its
    declared size allows (``sample.n`` or ``limit``), else ``MAX_ROUND_STEPS`` (the definitions
    do not load the data)."""
    from crucible_dagster.sweeps.race_design import declared_blocks

    assert experiment.sweep is not None
    race = experiment.sweep.race
    blocks = declared_blocks(experiment)
    if blocks is None:
        return MAX_ROUND_STEPS if race.max_blocks is None else race.max_rounds(race.max_blocks)
    return max(1, min(MAX_ROUND_STEPS, race.max_rounds(blocks)))


def _batches(experiment: Experiment, trials: list[Trial]) -> list[list[Trial]]:
    size = step_size(experiment.sweep, len(trials))
    return [trials[i : i + size] for i in range(0, len(trials), size)]


def _planned_outputs(
    experiment: Experiment, context: Any, sweep: Run, ancestors: list[Path]
) -> Iterator[dg.DynamicOutput]:
    """Plan the next round; one output per group of its trials (none once the race is over)."""
    from crucible_dagster.sweeps.race_steps import plan_round

    planned = plan_round(experiment, expand_grid(experiment), sweep, ancestors)
    if planned.ended:
        context.log.info(
            f"crucible: the race is over before round {planned.index}: {planned.ended}"
        )
    start = 0
    for batch in _batches(experiment, planned.trials):
        key = _batch_key(batch, start)
        yield dg.DynamicOutput(planned.payload(batch), mapping_key=key, output_name=TRIALS_OUT)
        start += len(batch)


def _round_trials_op(
    experiment: Experiment, translator: CrucibleTranslator, registry: Registry, index: int
) -> dg.OpDefinition:
    description = f"A group of round {index}'s trials (a survivor on the round's blocks)"
    pool = experiment.dagster.sweep.pool

    @_sweep_op(
        experiment, translator, f"round_{index}_trials", description, out=RESULT_OUT, pool=pool
    )
    def round_trials(context, planned):
        from crucible_dagster.sweeps.race_steps import planned_experiment

        run_experiment = context.resources.crucible.applied_to(experiment)
        trials = planned_experiment(run_experiment, planned)
        outcomes = run_trial_group(
            context, experiment, run_experiment, planned["trials"], registry, trials
        )
        yield group_output(outcomes)

    return round_trials


def _round_op(
    experiment: Experiment,
    translator: CrucibleTranslator,
    registry: Registry,
    index: int,
    last: bool,
) -> dg.OpDefinition:
    description = f"Round {index} of the race: look, drop, plan the next" + (
        " (and play any rounds after it)" if last else ""
    )
    planning = {TRIALS_OUT: dg.DynamicOut(io_manager_key=IO_MANAGER_KEY)}
    outs = RESULT_OUT if last else {**RESULT_OUT, **planning}

    @_sweep_op(experiment, translator, f"race_round_{index}", description, out=outs)
    def race_round(context, previous, results):
        run_experiment = context.resources.crucible.applied_to(experiment)
        sweep = dagster_run(run_experiment, context, steps=[])
        assert sweep.path is not None
        ancestors = _ancestor_runs(sweep.path.parent.parent, experiment, parent_run_id(context))
        from crucible_dagster.sweeps.race_steps import look_at_round

        outcomes = [TrialOutcome.from_dict(o) for group in results for o in group]
        trials = expand_grid(run_experiment)
        race, played = look_at_round(run_experiment, trials, sweep, outcomes, ancestors)
        rounds = [played] if played is not None else []
        carried = [*previous, *(o.to_dict() for o in outcomes)]
        record = race.record
        if last and not record.finished:  # the rounds beyond the graph's, in this step
            raced = _play_the_rest(run_experiment, context, registry, sweep, ancestors, rounds)
            carried += [o.to_dict() for o in raced.outcomes]
            record = raced.race.record if raced.race is not None else record
        metadata = _round_metadata(record, rounds, index)
        yield dg.Output(carried, output_name="result", metadata=metadata)
        if not last:
            yield from _planned_outputs(run_experiment, context, sweep, ancestors)

    return race_round


def _play_the_rest(
    experiment: Experiment,
    context: Any,
    registry: Registry,
    sweep: Run,
    ancestors: list[Path],
    played: list[RoundRecord],
) -> RacedTrials:
    from crucible_dagster.sweeps.raced import race_trials

    raced = race_trials(
        experiment,
        expand_grid(experiment),
        sweep,
        registry=registry,
        sinks=[dagster_log_sink(context)],
        orchestrator="dagster",
        earlier=ancestors,
        on_round=played.append,
    )
    if raced.failures:
        fail_sweep(sweep, raced.failures)
    return raced


def _round_metadata(record: RaceRecord, played: list[RoundRecord], index: int) -> dict[str, Any]:
    """Survivors, dropped and each configuration's evidence of the round(s) this step played."""
    if not played:
        return {"crucible/race": f"ended before round {index}: {record.finish_reason}"}
    last = played[-1]
    rows = [
        "| configuration | mean | statistic | p (adjusted) | decision |",
        "|---|---|---|---|---|",
    ]
    for e in last.look.get("evidence", []):
        rows.append(
            f"| {e['config']} | {e['mean']} | {e['statistic']} | {e['p_adjusted']} | "
            f"{'dropped' if e['dropped'] else 'kept'}: {e['reason']} |"
        )
    return {
        "crucible/survivors": ", ".join(record.survivors),
        "crucible/dropped": ", ".join(c for r in played for c in r.dropped) or "none",
        "crucible/blocks": ", ".join(b for r in played for b in r.blocks),
        "crucible/evaluations": dg.MetadataValue.int(sum(r.evaluations for r in played)),
        "crucible/evidence": dg.MetadataValue.md("\n".join(rows)),
        "crucible/race": record.finish_reason or "going on",
    }


def _plan_op(experiment: Experiment, translator: CrucibleTranslator) -> dg.OpDefinition:
    outs = {**RESULT_OUT, TRIALS_OUT: dg.DynamicOut(io_manager_key=IO_MANAGER_KEY)}
    description = "Start the race's record and plan its first round"

    @_sweep_op(experiment, translator, "plan_race", description, out=outs)
    def plan_race(context):
        run_experiment = context.resources.crucible.applied_to(experiment)
        tag_sweep_run(context, experiment, translator)
        trials = [t.to_dict() for t in expand_grid(run_experiment)]
        sweep = dagster_run(run_experiment, context, steps=[], trials=trials)
        assert sweep.path is not None
        ancestors = _ancestor_runs(sweep.path.parent.parent, experiment, parent_run_id(context))
        yield dg.Output([], output_name="result")
        yield from _planned_outputs(run_experiment, context, sweep, ancestors)

    return plan_race


def _survivors(
    context: Any, run_experiment: Experiment, sweep: Run, outcomes: list[Any]
) -> tuple[list[TrialOutcome], dict[str, Any]]:
    """A race compares its survivors (its record read back: ``rounds=0`` plays no round), with
    the race beside the comparison; the trials it never needed are recorded ``skipped``."""
    from crucible_dagster.sweeps.raced import race_summary, race_trials, sort_trials

    trials = expand_grid(run_experiment)
    raced = race_trials(run_experiment, trials, sweep, rounds=0)
    raced.outcomes = [TrialOutcome.from_dict(o) for o in outcomes]
    assert run_experiment.sweep is not None
    sort_trials(raced, trials, on_data=run_experiment.sweep.race.block != "seeds")
    for trial in raced.skipped:
        sweep.record(f"trial:{trial.trial_id}", "skipped")
    for trial in raced.raced_on_data:
        sweep.record(f"trial:{trial.trial_id}", "completed")
    finish = {"extra": {"race": race_summary(raced)}, "exhausted": raced.budget_spent}
    return raced.survivors_outcomes(), finish


def race_steps(
    experiment: Experiment, translator: CrucibleTranslator, registry: Registry
) -> Compose:
    """A raced sweep's steps: plan the race, each round's trials (mapped) and its look in a
    chain, compare the survivors."""
    count = round_steps(experiment)
    plan = _plan_op(experiment, translator)
    rounds = [
        _round_op(experiment, translator, registry, i, last=i == count) for i in range(1, count + 1)
    ]
    groups = [_round_trials_op(experiment, translator, registry, i) for i in range(1, count + 1)]
    compare = compare_op(
        experiment, translator, "Statistical comparison of the race's survivors", _survivors
    )

    def compose(node: Callable[[str], str]) -> Any:
        result, planned = plan.alias(node("plan_race"))()
        for i, (look, run_group) in enumerate(zip(rounds, groups, strict=True), start=1):
            ran = planned.map(run_group.alias(node(f"round_{i}_trials"))).collect()
            if i < count:
                result, planned = look.alias(node(f"race_round_{i}"))(result, ran)
            else:
                result = look.alias(node(f"race_round_{i}"))(result, ran)
        return compare.alias(node("compare_trials"))(result)

    return compose
