"""A sweep as one Dagster run: plan the trials, fan out with DynamicOut, collect into a comparison.

Trials run sequentially in-process by default, in parallel under the multiprocess executor
when the experiment asks for it. "Re-execute from failure" reruns only the failed trials:
the others' outcomes are read back from the parent run's storage.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from crucible_dagster.dagster_plugin.io_manager import IO_MANAGER_KEY
from crucible_dagster.dagster_plugin.ops import (
    dagster_log_sink,
    dagster_run_record,
    parent_run_id,
    stage_failure,
)
from crucible_dagster.dagster_plugin.resource import RESOURCE_KEY
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator
from crucible_dagster.experiment.ir import DEFAULT_TRIALS_PER_STEP, Experiment
from crucible_dagster.runtime.registry import Registry
from crucible_dagster.runtime.run_record import read_manifest, run_directory
from crucible_dagster.sweeps.grid import Trial, expand_grid
from crucible_dagster.sweeps.running import (
    TrialOutcome,
    completed_attempt,
    next_attempt_dir,
    run_trial,
)


def _batches(experiment: Experiment) -> list[list[Trial]]:
    """Trials grouped for steps: ``sweep.trials_per_step`` each (one event-log round per step)."""
    trials = expand_grid(experiment)
    size = experiment.sweep.trials_per_step if experiment.sweep else DEFAULT_TRIALS_PER_STEP
    return [trials[i : i + size] for i in range(0, len(trials), size)]


def _batch_key(batch: list[Trial], start: int) -> str:
    """A trial's own id for a group of one; else the 1-based range of trials it holds."""
    if len(batch) == 1:
        return batch[0].trial_id
    return f"trials_{start + 1}_to_{start + len(batch)}"


def _ancestor_runs(root: Path, experiment: Experiment, parent: str | None) -> list[Path]:
    """The run directories a re-execution descends from, nearest first (read once a step)."""
    runs: list[Path] = []
    while parent and all(run.name != parent for run in runs):
        runs.append(run_directory(root, experiment.id, parent))
        try:
            parent = read_manifest(runs[-1]).get("parent_run_id")
        except ValueError:
            break
    return runs


def _plan_op(experiment: Experiment, translator: CrucibleTranslator) -> dg.OpDefinition:

    @dg.op(
        name=translator.op_definition_name(experiment, "plan_trials"),
        out={"trial": dg.DynamicOut(io_manager_key=IO_MANAGER_KEY)},
        description="One output per group of trials (grid point x seed)",
        tags=translator.step_tags(experiment, "plan_trials"),
        required_resource_keys={RESOURCE_KEY},
    )
    def plan_trials(context):  # dagster inspects the (absent) annotations
        run_experiment = context.resources.crucible.applied_to(experiment)  # this run's grid
        batches = _batches(run_experiment)
        trials = [t for batch in batches for t in batch]
        dagster_run_record(run_experiment, context, steps=[], trials=[t.to_dict() for t in trials])
        start = 0
        for batch in batches:
            yield dg.DynamicOutput(
                [t.to_dict() for t in batch],
                mapping_key=_batch_key(batch, start),
                output_name="trial",
            )
            start += len(batch)

    return plan_trials


def _trial_op(
    experiment: Experiment, translator: CrucibleTranslator, registry: Registry
) -> dg.OpDefinition:
    @dg.op(
        name=translator.op_definition_name(experiment, "run_trial"),
        out={"result": dg.Out(io_manager_key=IO_MANAGER_KEY)},
        description="Every stage of the pipeline for each trial of the group",
        tags=translator.step_tags(experiment, "run_trial"),
        required_resource_keys={RESOURCE_KEY},
        pool=experiment.sweep.pool if experiment.sweep else None,
    )
    def run_one(context, trials):
        run_experiment = context.resources.crucible.applied_to(experiment)
        sweep = dagster_run_record(run_experiment, context, steps=[])
        ancestors = _ancestor_runs(sweep.path.parent.parent, experiment, parent_run_id(context))
        sinks = [dagster_log_sink(context)]
        outcomes, failures = [], []
        for spec in (Trial.from_dict(t) for t in trials):
            earlier = completed_attempt([sweep.path, *ancestors], spec)
            if earlier is not None:
                outcomes.append(earlier)
                continue
            try:
                outcome, result = run_trial(
                    run_experiment,
                    spec,
                    run_dir=next_attempt_dir(sweep.path, spec),
                    run_id=f"{context.run_id}.{spec.trial_id}",
                    registry=registry,
                    sinks=sinks,
                    orchestrator="dagster",
                )
            except BaseException as exc:
                sweep.abort(exc)
                raise
            outcomes.append(outcome)
            if result.failure is not None:
                failures.append((spec, result.failure))
        if failures:
            # The run fails here, so the sweep's record ends here too (a re-execution has its own).
            spec, failure = failures[0]
            sweep.finish("failed", failure={"trial": spec.trial_id, **failure.to_dict()})
            raise stage_failure(failure, trial=", ".join(s.trial_id for s, _ in failures))
        ids = ", ".join(o.trial.trial_id for o in outcomes)
        workers = sorted({f"{o.worker['host']}:{o.worker['pid']}" for o in outcomes if o.worker})
        metadata = {"crucible/trials": ids, "crucible/workers": ", ".join(workers)}
        yield dg.Output([o.to_dict() for o in outcomes], metadata=metadata)

    return run_one


def _compare_op(experiment: Experiment, translator: CrucibleTranslator) -> dg.OpDefinition:
    @dg.op(
        name=translator.op_definition_name(experiment, "compare_trials"),
        out={"result": dg.Out(io_manager_key=IO_MANAGER_KEY)},
        description="Statistical comparison of the configurations",
        tags=translator.step_tags(experiment, "compare_trials"),
        required_resource_keys={RESOURCE_KEY},
    )
    def compare(context, outcomes):
        # scipy and the report writers load when a sweep is compared, not with the definitions
        from crucible_dagster.sweeps.comparison import compare_trials
        from crucible_dagster.sweeps.report import write_sweep_reports

        parsed = [TrialOutcome.from_dict(o) for group in outcomes for o in group]
        run_experiment = context.resources.crucible.applied_to(experiment)
        comparison = compare_trials(run_experiment, parsed)
        sweep = dagster_run_record(run_experiment, context, steps=[])
        sweep.telemetry.emit("sweep_compared", trials=len(parsed))
        paths = write_sweep_reports(run_experiment, comparison, sweep.path, context.run_id)
        sweep.finish("completed", metrics={"sweep": comparison})
        yield from sweep_materialization(experiment, translator, comparison, paths)
        yield dg.Output(comparison)

    return compare


def build_sweep_job(
    experiment: Experiment,
    *,
    translator: CrucibleTranslator,
    registry: Registry,
    resource_defs: dict[str, Any],
    executor_def: dg.ExecutorDefinition,
) -> dg.JobDefinition:
    plan_trials = _plan_op(experiment, translator)
    run_one = _trial_op(experiment, translator, registry)
    compare = _compare_op(experiment, translator)

    def node(step: str) -> str:
        return translator.node_name(experiment, step)

    @dg.job(
        name=translator.job_name(experiment),
        description=translator.job_description(experiment),
        tags=translator.job_tags(experiment),
        resource_defs=resource_defs,
        executor_def=executor_def,
    )
    def sweep_job() -> None:
        planned = plan_trials.alias(node("plan_trials"))()
        results = planned.map(run_one.alias(node("run_trial")))
        compare.alias(node("compare_trials"))(results.collect())

    return sweep_job


def sweep_materialization(
    experiment: Experiment,
    translator: CrucibleTranslator,
    comparison: dict[str, Any],
    paths: dict[str, str],
) -> Iterator[dg.AssetMaterialization]:
    from pathlib import Path

    metadata: dict[str, Any] = {
        f"path/{fmt}": dg.MetadataValue.path(path) for fmt, path in paths.items()
    }
    metadata["preview"] = dg.MetadataValue.md(
        Path(paths["markdown"]).read_text(encoding="utf-8")[:20000]
    )
    best = comparison.get("best") or {}
    if best:
        metadata["best_configuration"] = str(best.get("configuration"))
        metadata["best_significantly_better"] = bool(best.get("significantly_better"))
    for name, summary in (comparison.get("configurations") or {}).items():
        if isinstance(summary.get("mean"), float):
            metadata[f"mean/{name}"] = dg.MetadataValue.float(summary["mean"])
    yield dg.AssetMaterialization(
        asset_key=translator.sweep_asset_key(experiment), metadata=metadata
    )
