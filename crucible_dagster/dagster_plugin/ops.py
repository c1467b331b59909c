"""One op per stage. The op body is a thin shell around ``core.runner.invoke_stage``,
so stage semantics are identical under Dagster and in the plain runner."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import dagster as dg

from crucible_dagster.core.context import Context
from crucible_dagster.core.ir import Experiment, StageDef
from crucible_dagster.core.registry import Registry
from crucible_dagster.core.rundir import RunDirectory, artifacts_root
from crucible_dagster.core.runner import StageFailure, invoke_stage, new_context
from crucible_dagster.core.stage import Stage
from crucible_dagster.core.telemetry import JsonlSink, Telemetry
from crucible_dagster.dagster_plugin.config import options_config_schema
from crucible_dagster.dagster_plugin.io_manager import IO_MANAGER_KEY
from crucible_dagster.dagster_plugin.report_events import metric_metadata, report_events
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator

CONTEXT_IN = {"upstream": dg.In(description="The Context from the previous stage")}
CONTEXT_OUT = {
    "result": dg.Out(
        io_manager_key=IO_MANAGER_KEY, description="The crucible Context after this stage"
    )
}


def _dagster_sink(context: dg.OpExecutionContext) -> Any:
    def sink(event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "stage_started":
            context.log.info(f"crucible: stage {event['stage']} started ({event.get('module')})")
        elif kind == "stage_completed":
            context.log.info(
                f"crucible: stage {event['stage']} completed in {event['duration_ms']:.1f} ms"
            )
        elif kind == "stage_failed":
            context.log.error(
                f"crucible: stage {event['stage']} failed after {event['duration_ms']:.1f} ms: {event['error_type']}: {event['message']}"
            )

    return sink


def _bind_to_run(
    ctx: Context, experiment: Experiment, context: dg.OpExecutionContext
) -> tuple[Context, RunDirectory]:
    """The context belongs to the current Dagster run (a re-execution gets its own run directory)."""
    run_dir = RunDirectory.at(artifacts_root() / experiment.id / context.run_id)
    if not run_dir.started:
        parent = context.run.tags.get("dagster/parent_run_id")
        run_dir = RunDirectory(None, experiment.id, context.run_id)
        run_dir.start(
            experiment,
            run_id=context.run_id,
            params=dict(ctx.params),
            seed=experiment.seed,
            orchestrator="dagster",
            parent_run_id=parent,
        )
    if ctx.run_id != context.run_id or ctx.run_dir != str(run_dir.path):
        ctx = replace(ctx, run_id=context.run_id, run_dir=str(run_dir.path))
    return ctx, run_dir


def _output_metadata(ctx: Context, stage: str, duration_ms: float) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "crucible/stage": stage,
        "crucible/duration_ms": dg.MetadataValue.float(round(duration_ms, 3)),
    }
    metadata.update(metric_metadata(ctx.metrics, "metric/"))
    return metadata


def stage_failure(failure: StageFailure, **context: str) -> dg.Failure:
    """A failed stage as a Dagster failure: stage, error and traceback in the event log and metadata."""
    where = "".join(f"{key} {value}: " for key, value in context.items())
    return dg.Failure(
        description=f"{where}stage {failure.stage!r} failed: {failure.error_type}: {failure.message}",
        metadata={
            **{f"crucible/{key}": value for key, value in context.items()},
            "crucible/stage": failure.stage,
            "crucible/error_type": failure.error_type,
            "crucible/reason": failure.reason,
            "crucible/message": dg.MetadataValue.text(failure.message),
            "crucible/traceback": dg.MetadataValue.text(failure.traceback or ""),
        },
        allow_retries=False,
    )


def build_stage_op(
    experiment: Experiment,
    stage_def: StageDef,
    stage_cls: type[Stage],
    *,
    first: bool,
    last: bool,
    translator: CrucibleTranslator,
    registry: Registry,
) -> dg.OpDefinition:
    name = translator.op_definition_name(experiment, stage_def)
    skipped = [s.name for s in experiment.pipeline if not s.enabled]

    def execute(context: dg.OpExecutionContext, upstream: Context | None) -> Iterator[Any]:
        if upstream is None:
            ctx = new_context(experiment, run_id=context.run_id, trace=True)
            for skipped_name in skipped:
                ctx = ctx.emit(
                    "stage_skipped",
                    f"Skipped stage: {skipped_name}",
                    f"Stage {skipped_name} is disabled (enabled: false)",
                    stage_id=skipped_name,
                )
        else:
            ctx = upstream
        ctx, run_dir = _bind_to_run(ctx, experiment, context)
        if upstream is None:
            for skipped_name in skipped:
                run_dir.record_stage(skipped_name, "skipped")
        telemetry = Telemetry(
            [_dagster_sink(context), JsonlSink(run_dir.telemetry_path)],
            experiment_id=experiment.id,
            run_id=context.run_id,
        )
        outcome = invoke_stage(
            ctx,
            stage_def,
            registry=registry,
            validate_options="error",
            telemetry=telemetry,
            options=dict(context.op_config or {}),
        )
        run_dir.record_stage(stage_def.name, outcome.status, outcome.options, outcome.duration_ms)
        failure = outcome.failure
        if failure is not None:
            if failure.reason == "quality_target_failed":
                # The reports exist: record them and every check before failing the run.
                yield from report_events(ctx, failure.context, experiment, translator)
            run_dir.finish(
                "failed",
                failure.context.metrics,
                failure.context.assigns.get("data_fingerprints"),
                failure.to_dict(),
            )
            raise stage_failure(failure)
        result = outcome.context
        if last:
            if result.trace is not None:
                run_dir.write_text("trace.json", result.trace.export("json"))
            run_dir.finish("completed", result.metrics, result.assigns.get("data_fingerprints"))
        else:
            run_dir.write_manifest()
        yield from report_events(ctx, result, experiment, translator)
        yield dg.Output(
            result, metadata=_output_metadata(result, stage_def.name, outcome.duration_ms)
        )

    ins = {} if first else CONTEXT_IN
    # A plain OpDefinition: the @op decorator's signature inspection costs ~1 ms per op,
    # which dominates loading a folder of many experiments.
    return dg.OpDefinition(
        compute_fn=lambda context, inputs: execute(context, inputs.get("upstream")),
        name=name,
        ins=ins,
        outs=CONTEXT_OUT,
        description=translator.op_description(experiment, stage_def, stage_cls),
        tags=translator.op_tags(experiment, stage_def, stage_cls),
        config_schema=options_config_schema(stage_cls, stage_def.options),
    )
