"""A sweep as one Dagster run: plan the trials, fan out with DynamicOut, collect into a comparison.

Trials run sequentially in-process by default, in parallel under the multiprocess executor
when the experiment asks for it. "Re-execute from failure" reruns only the failed trials:
the others' outcomes are read back from the parent run's storage.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dagster as dg

from crucible_dagster.core.grid import Trial, expand_grid
from crucible_dagster.core.ir import Experiment
from crucible_dagster.core.registry import Registry
from crucible_dagster.core.rundir import RunDirectory, artifacts_root
from crucible_dagster.core.sweep import TrialOutcome, compare_trials, run_trial, trial_run_dir
from crucible_dagster.core.telemetry import JsonlSink
from crucible_dagster.dagster_plugin.io_manager import IO_MANAGER_KEY
from crucible_dagster.dagster_plugin.ops import _dagster_sink, stage_failure
from crucible_dagster.dagster_plugin.report_events import metric_metadata
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator


def _sweep_dir(experiment: Experiment, context: Any, **extra: Any) -> RunDirectory:
    """This run's sweep directory, started on first use (a re-execution gets its own)."""
    sweep_dir = RunDirectory.at(artifacts_root() / experiment.id / context.run_id)
    if not sweep_dir.started:
        sweep_dir = RunDirectory.at_path(sweep_dir.path)
        parent = context.run.tags.get("dagster/parent_run_id")
        sweep_dir.start(
            experiment,
            run_id=context.run_id,
            params={},
            seed=experiment.seed,
            orchestrator="dagster",
            parent_run_id=parent,
            **extra,
        )
    return sweep_dir


def build_sweep_job(
    experiment: Experiment,
    *,
    translator: CrucibleTranslator,
    registry: Registry,
    resource_defs: dict[str, Any],
    executor_def: dg.ExecutorDefinition,
) -> dg.JobDefinition:
    trials = expand_grid(experiment)
    out = {"result": dg.Out(io_manager_key=IO_MANAGER_KEY)}

    @dg.op(
        name=translator.step_op_definition_name(experiment, "plan_trials"),
        out={"trial": dg.DynamicOut(io_manager_key=IO_MANAGER_KEY)},
        description="One output per grid point x seed",
        tags={"crucible/stage": "plan_trials"},
    )
    def plan_trials(context):  # type: ignore[no-untyped-def]  # dagster inspects annotations
        _sweep_dir(experiment, context, trials=[t.to_dict() for t in trials])
        for trial in trials:
            yield dg.DynamicOutput(trial.to_dict(), mapping_key=trial.trial_id, output_name="trial")

    @dg.op(
        name=translator.step_op_definition_name(experiment, "run_trial"),
        out=out,
        description="Every stage of the pipeline for one trial",
        tags={"crucible/stage": "run_trial"},
    )
    def run_one(context, trial):  # type: ignore[no-untyped-def]
        spec = Trial.from_dict(trial)
        base = artifacts_root() / experiment.id / context.run_id
        sinks = [_dagster_sink(context)]
        outcome, result = run_trial(
            experiment,
            spec,
            run_dir=trial_run_dir(base, spec),
            run_id=f"{context.run_id}.{spec.trial_id}",
            registry=registry,
            sinks=sinks,
            orchestrator="dagster",
        )
        if result.failure is not None:
            raise stage_failure(result.failure, trial=spec.trial_id)
        metadata = metric_metadata(outcome.metrics, "metric/")
        yield dg.Output(outcome.to_dict(), metadata={"crucible/trial": spec.trial_id, **metadata})

    @dg.op(
        name=translator.step_op_definition_name(experiment, "compare_trials"),
        out=out,
        description="Statistical comparison of the configurations",
        tags={"crucible/stage": "compare_trials"},
    )
    def compare(context, outcomes):  # type: ignore[no-untyped-def]
        from crucible_dagster.report.sweep import write_sweep_reports

        parsed = [TrialOutcome.from_dict(o) for o in outcomes]
        comparison = compare_trials(experiment, parsed)
        sweep_dir = _sweep_dir(experiment, context)
        JsonlSink(sweep_dir.telemetry_path)({"event": "sweep_compared", "trials": len(parsed)})
        paths = write_sweep_reports(experiment, comparison, sweep_dir.path, context.run_id)
        sweep_dir.finish("completed", {"sweep": comparison})
        yield from _sweep_materialization(experiment, translator, comparison, paths)
        yield dg.Output(comparison)

    @dg.job(
        name=translator.job_name(experiment),
        description=translator.job_description(experiment),
        tags=translator.job_tags(experiment),
        resource_defs=resource_defs,
        executor_def=executor_def,
    )
    def sweep_job() -> None:
        planned = plan_trials.alias("plan_trials")()
        results = planned.map(run_one.alias("run_trial"))
        compare.alias("compare_trials")(results.collect())

    return sweep_job


def _sweep_materialization(
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
