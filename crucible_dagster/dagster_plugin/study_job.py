"""``sweep.strategy: optuna`` as one Dagster run: ``plan_study`` opens the study and fans out
one ``run_study_trials`` step per group of ``sweep.trials_per_step`` slots (a static count:
``n_trials``; ``trials_per_step: 1`` gives every trial its own step), and ``compare_trials``
compares the complete trials and materializes the sweep asset with the study beside it.

A step asks Optuna for its slots' configurations when it runs, not when the run is planned, so
each trial's sampler sees every trial finished before it (in process, steps run one after the
other). Under ``multiprocess`` or Celery the steps run in parallel on one study: its storage
must then be one every worker reaches (``sweep.optuna.storage_env``: PostgreSQL). Each step
lists its trials (state, value, seeds run, the racing pruner's adjusted p, parameters) as
metadata. "Re-execute from failure" continues the study: a new run's steps copy the parent's
``optuna.db`` (or share the database), finished slots are read back and a slot left running
goes on with the same trial."""

from __future__ import annotations

import json
from typing import Any

import dagster as dg

from crucible_dagster import Experiment, Registry
from crucible_dagster.dagster_plugin.io_manager import IO_MANAGER_KEY
from crucible_dagster.dagster_plugin.ops import dagster_log_sink, dagster_run, parent_run_id
from crucible_dagster.dagster_plugin.ops import stage_failure as to_stage_failure
from crucible_dagster.dagster_plugin.sweep import (
    RESULT_OUT,
    Compose,
    _ancestor_runs,
    _sweep_op,
    compare_op,
    mapped_steps,
    tag_sweep_run,
)
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator
from crucible_dagster.experiment.ir import step_size
from crucible_dagster.runtime.driver import Run
from crucible_dagster.sweeps.running import TrialOutcome


def slot_batches(experiment: Experiment) -> list[list[int]]:
    """The study's slots grouped for steps: ``sweep.trials_per_step`` each (``step_size``)."""
    assert experiment.sweep is not None
    slots = list(range(experiment.sweep.study.n_trials))
    size = step_size(experiment.sweep, len(slots))
    return [slots[i : i + size] for i in range(0, len(slots), size)]


def batch_key(batch: list[int]) -> str:
    """``trial_<n>`` for a step of one slot, ``trials_<a>_to_<b>`` otherwise (1-based)."""
    if len(batch) == 1:
        return f"trial_{batch[0] + 1}"
    return f"trials_{batch[0] + 1}_to_{batch[-1] + 1}"


def _study_failure(sweep: Run, exc: Exception) -> dg.Failure:
    """A study that cannot go on (storage, metric, score range): the record ends failed."""
    sweep.fail({"error_type": type(exc).__name__, "message": str(exc)})
    return dg.Failure(description=str(exc), allow_retries=False)


def _plan_op(experiment: Experiment, translator: CrucibleTranslator) -> dg.OpDefinition:
    slots_out = dg.DynamicOut(io_manager_key=IO_MANAGER_KEY)
    description = "Open the study; one output per group of its trials"

    @_sweep_op(experiment, translator, "plan_study", description, out={"slots": slots_out})
    def plan_study(context):
        from crucible_dagster.sweeps.study import StudyError
        from crucible_dagster.sweeps.study_run import start_study

        run_experiment = context.resources.crucible.applied_to(experiment)
        tag_sweep_run(context, experiment, translator)
        sweep = dagster_run(run_experiment, context, steps=[], trials=[])
        assert sweep.path is not None
        ancestors = _ancestor_runs(sweep.path.parent.parent, experiment, parent_run_id(context))
        try:
            name = start_study(run_experiment, sweep, ancestors)
        except StudyError as exc:
            raise _study_failure(sweep, exc) from None
        context.log.info(f"crucible: study {name}")
        for batch in slot_batches(run_experiment):
            yield dg.DynamicOutput(batch, mapping_key=batch_key(batch), output_name="slots")

    return plan_study


def _trials_op(
    experiment: Experiment, translator: CrucibleTranslator, registry: Registry
) -> dg.OpDefinition:
    description = "Ask the study for each slot's configuration and run it on the seeds"
    pool = experiment.dagster.sweep.pool

    @_sweep_op(experiment, translator, "run_study_trials", description, out=RESULT_OUT, pool=pool)
    def run_study_trials(context, slots):
        from crucible_dagster.sweeps.studied import run_slot
        from crucible_dagster.sweeps.study import StudyError
        from crucible_dagster.sweeps.study_run import start_study

        run_experiment = context.resources.crucible.applied_to(experiment)
        sweep = dagster_run(run_experiment, context, steps=[])
        assert sweep.path is not None
        ancestors = _ancestor_runs(sweep.path.parent.parent, experiment, parent_run_id(context))
        results = []
        try:
            name = start_study(run_experiment, sweep, ancestors)
            for slot in slots:
                results.append(
                    run_slot(
                        run_experiment,
                        slot,
                        sweep,
                        name=name,
                        registry=registry,
                        sinks=[dagster_log_sink(context)],
                        orchestrator="dagster",
                        earlier=ancestors,
                    )
                )
        except StudyError as exc:
            raise _study_failure(sweep, exc) from None
        failures = [f for r in results for f in r.failures]
        if failures:
            spec, failure = failures[0]
            sweep.fail({"trial": spec.trial_id, **failure.to_dict()})
            raise to_stage_failure(failure, trial=", ".join(s.trial_id for s, _ in failures))
        yield dg.Output([r.to_dict() for r in results], metadata=_trials_metadata(results))

    return run_study_trials


def _trials_metadata(results: list[Any]) -> dict[str, Any]:
    """The step's trials, one row each."""
    rows = [
        "| trial | state | value | seeds run | p adj (racing) | parameters |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        p = (r.evidence or {}).get("p_adjusted")
        params = json.dumps(r.params, default=str).replace("|", "\\|")
        rows.append(
            f"| {r.config} | {r.state} | {r.value if r.value is not None else ''} | "
            f"{len(r.scores)} | {'' if p is None else f'{p:.3g}'} | `{params}` |"
        )
    return {
        "crucible/trials": dg.MetadataValue.md("\n".join(rows)),
        "crucible/states": ", ".join(f"{r.config}: {r.state}" for r in results),
    }


def _compare_op(experiment: Experiment, translator: CrucibleTranslator) -> dg.OpDefinition:
    description = "Statistical comparison of the study's complete trials"

    def complete_trials(
        context: Any, run_experiment: Experiment, sweep: Run, groups: list[Any]
    ) -> tuple[list[TrialOutcome], dict[str, Any]]:
        """A study compares its complete trials, with the study beside the comparison."""
        from crucible_dagster.sweeps.studied import SlotResult
        from crucible_dagster.sweeps.study_run import StudyTrials, study_name_for, study_summary

        assert sweep.path is not None
        ancestors = _ancestor_runs(sweep.path.parent.parent, experiment, parent_run_id(context))
        studied = StudyTrials(study_name_for(run_experiment, sweep, ancestors))
        studied.slots = [SlotResult.from_dict(s) for group in groups for s in group]
        summary = study_summary(run_experiment, studied.name, studied.slots)
        return studied.compared_outcomes(), {"extra": {"study": summary}}

    return compare_op(experiment, translator, description, complete_trials)


def study_steps(
    experiment: Experiment, translator: CrucibleTranslator, registry: Registry
) -> Compose:
    """A study's steps: open it, run each group of slots (mapped), compare the trials."""
    plan = (_plan_op(experiment, translator), "plan_study")
    run = (_trials_op(experiment, translator, registry), "run_study_trials")
    return mapped_steps(plan, run, _compare_op(experiment, translator))
