"""``sweep.strategy: racing`` as one Dagster run whose rounds are steps: ``plan_race``, then a
static chain of ``race_round_<i>`` ops (as many as the race can take, at most
``MAX_ROUND_STEPS``; the last plays whatever is left) and ``compare_trials``. A round op plays
one round through the one trial loop (``sweeps.raced``) and lists the survivors, the dropped
configurations and their evidence as step metadata; once the race has ended, the remaining round
ops end at once. ``race.json`` in the run directory is the race's state, so "Re-execute from
failure" continues from the last finished round with the same decisions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dagster as dg

from crucible_dagster import Experiment, Registry
from crucible_dagster.dagster_plugin.ops import dagster_log_sink, dagster_run, parent_run_id
from crucible_dagster.dagster_plugin.ops import stage_failure as to_stage_failure
from crucible_dagster.dagster_plugin.sweep import (
    RESULT_OUT,
    _ancestor_runs,
    _sweep_op,
    sweep_materialization,
)
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator
from crucible_dagster.sweeps.finish import finish_sweep
from crucible_dagster.sweeps.grid import expand_grid
from crucible_dagster.sweeps.running import TrialOutcome

if TYPE_CHECKING:
    from crucible_dagster.racing.state import RoundRecord
    from crucible_dagster.sweeps.raced import RacedTrials

#: round steps in the static graph; a race that could take more plays the rest in the last one
MAX_ROUND_STEPS = 40


def round_steps(experiment: Experiment) -> int:
    """Steps for the most rounds the race can take; over the dataset's samples, as many as its
    declared size allows (``sample.n`` or ``limit``), else ``MAX_ROUND_STEPS`` (the definitions
    do not load the data)."""
    assert experiment.sweep is not None
    race = experiment.sweep.race
    blocks: int | None = len(experiment.seeds)
    dataset = experiment.dataset
    if race.block == "folds" and dataset is not None and dataset.folds is not None:
        blocks = dataset.folds.k
    elif race.block == "samples":
        sample = dataset.sample if dataset is not None else None
        blocks = sample.n if sample is not None and sample.n is not None else None
        if blocks is None and dataset is not None:
            blocks = dataset.limit
    if blocks is None:
        return MAX_ROUND_STEPS if race.max_blocks is None else race.max_rounds(race.max_blocks)
    return max(1, min(MAX_ROUND_STEPS, race.max_rounds(blocks)))


def _round_op(
    experiment: Experiment,
    translator: CrucibleTranslator,
    registry: Registry,
    index: int,
    last: bool,
) -> dg.OpDefinition:
    description = f"Round {index} of the race" + (" (and any rounds after it)" if last else "")

    @_sweep_op(experiment, translator, f"race_round_{index}", description, out=RESULT_OUT)
    def race_round(context, previous):
        run_experiment = context.resources.crucible.applied_to(experiment)
        sweep = dagster_run(run_experiment, context, steps=[])
        assert sweep.path is not None
        ancestors = _ancestor_runs(sweep.path.parent.parent, experiment, parent_run_id(context))
        # numpy and scipy load when a race runs, not with the definitions
        from crucible_dagster.sweeps.raced import race_trials

        played: list[RoundRecord] = []
        raced = race_trials(
            run_experiment,
            expand_grid(run_experiment),
            sweep,
            registry=registry,
            sinks=[dagster_log_sink(context)],
            orchestrator="dagster",
            earlier=ancestors,
            on_round=played.append,
            rounds=None if last else 1,
        )
        if raced.failures:
            spec, failure = raced.failures[0]
            sweep.fail({"trial": spec.trial_id, **failure.to_dict()})
            raise to_stage_failure(failure, trial=", ".join(s.trial_id for s, _ in raced.failures))
        outcomes = [*previous, *(o.to_dict() for o in raced.outcomes)]
        yield dg.Output(outcomes, metadata=_round_metadata(raced, played, index))

    return race_round


def _round_metadata(raced: RacedTrials, played: list[RoundRecord], index: int) -> dict[str, Any]:
    """Survivors, dropped and each configuration's evidence of the round(s) this step played."""
    assert raced.race is not None
    record = raced.race.record
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
        "crucible/evidence": dg.MetadataValue.md("\n".join(rows)),
        "crucible/race": record.finish_reason or "going on",
    }


def _plan_op(experiment: Experiment, translator: CrucibleTranslator) -> dg.OpDefinition:
    @_sweep_op(experiment, translator, "plan_race", "Start the race's record", out=RESULT_OUT)
    def plan_race(context):
        run_experiment = context.resources.crucible.applied_to(experiment)
        trials = [t.to_dict() for t in expand_grid(run_experiment)]
        dagster_run(run_experiment, context, steps=[], trials=trials)
        yield dg.Output([])

    return plan_race


def _compare_op(experiment: Experiment, translator: CrucibleTranslator) -> dg.OpDefinition:
    description = "Statistical comparison of the race's survivors"

    @_sweep_op(experiment, translator, "compare_trials", description, out=RESULT_OUT)
    def compare(context, outcomes):
        run_experiment = context.resources.crucible.applied_to(experiment)
        sweep = dagster_run(run_experiment, context, steps=[])
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
        comparison, paths = finish_sweep(
            run_experiment,
            raced.survivors_outcomes(),
            sweep,
            extra={"race": race_summary(raced)},
            exhausted=raced.budget_spent,
        )
        yield from sweep_materialization(experiment, translator, comparison, paths)
        yield dg.Output(comparison)

    return compare


def build_race_job(
    experiment: Experiment,
    *,
    translator: CrucibleTranslator,
    registry: Registry,
    resource_defs: dict[str, Any],
    executor_def: dg.ExecutorDefinition,
) -> dg.JobDefinition:
    count = round_steps(experiment)
    plan = _plan_op(experiment, translator)
    rounds = [
        _round_op(experiment, translator, registry, i, last=i == count) for i in range(1, count + 1)
    ]
    compare = _compare_op(experiment, translator)

    def node(step: str) -> str:
        return translator.get_op_spec(experiment, step).node_name

    spec = translator.get_job_spec(experiment)

    @dg.job(
        name=spec.name,
        description=spec.description,
        tags=spec.tags,
        resource_defs=resource_defs,
        executor_def=executor_def,
    )
    def race_job() -> None:
        result = plan.alias(node("plan_race"))()
        for i, op in enumerate(rounds, start=1):
            result = op.alias(node(f"race_round_{i}"))(result)
        compare.alias(node("compare_trials"))(result)

    return race_job
