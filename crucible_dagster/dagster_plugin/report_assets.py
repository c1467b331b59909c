"""Report assets that Dagster can materialize: the catalog's Materialize button and
``dagster asset materialize --select <key>`` run the experiment and record its reports.

The construct is a ``multi_asset`` over the experiment's report specs (with its checks as
check specs, so each check is declared once): its one step runs the experiment with the core
runner, the same ``invoke_stage`` the job's ops call, and turns the report stage's events
into ``MaterializeResult`` and ``AssetCheckResult``. The experiment's job (one op per stage)
stays the way to run it with per-stage steps, retries and re-execution from failure; it
materializes the same asset keys. A graph-backed multi-asset would keep per-stage steps in
the asset run too, but would nest every stage's Launchpad config under the asset's graph,
so the job's config and the asset's would differ.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from crucible_dagster.dagster_plugin.ops import (
    dagster_log_sink,
    dataset_observations,
    stage_failure,
)
from crucible_dagster.dagster_plugin.report_events import report_events
from crucible_dagster.dagster_plugin.resource import RESOURCE_KEY, CrucibleResource
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator
from crucible_dagster.experiment.ir import REPORT_EXTENSIONS, Experiment
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.registry import Registry


def as_asset_results(events: Iterator[Any]) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """The report stage's runtime events as a multi-asset's results."""
    for event in events:
        if isinstance(event, dg.AssetMaterialization):
            yield dg.MaterializeResult(asset_key=event.asset_key, metadata=event.metadata)
        elif isinstance(event, dg.AssetCheckEvaluation):
            yield dg.AssetCheckResult(
                asset_key=event.asset_key,
                check_name=event.check_name,
                passed=event.passed,
                metadata=event.metadata,
                severity=event.severity,
            )


def report_multi_asset(
    experiment: Experiment,
    specs: Sequence[dg.AssetSpec],
    check_specs: Sequence[dg.AssetCheckSpec],
    *,
    translator: CrucibleTranslator,
    registry: Registry,
) -> dg.AssetsDefinition:
    @dg.multi_asset(
        name=translator.op_definition_name(experiment, "materialize_reports"),
        specs=list(specs),
        check_specs=list(check_specs),
        required_resource_keys={RESOURCE_KEY},
        description=f"Runs experiment {experiment.id} and materializes its reports",
        op_tags=translator.step_tags(experiment, "materialize_reports"),
    )
    def materialize(context):  # dagster inspects the (absent) annotation
        resource: CrucibleResource = context.resources.crucible
        run_experiment = resource.applied_to(experiment)
        if run_experiment.is_sweep:
            yield from _sweep(context, run_experiment, resource, translator, registry)
            return
        from crucible_dagster.runtime.runner import run

        result = run(
            run_experiment,
            run_id=context.run.run_id,
            registry=registry,
            artifacts_root=resource.artifacts_dir,
            validate_options=resource.validate_options,
            sinks=[dagster_log_sink(context)],
            orchestrator="dagster",
        )
        empty = Context(experiment_id=experiment.id, run_id=context.run.run_id)
        # the data first, so the reports' materializations record its version as their input
        yield from dataset_observations(empty, result.context, run_experiment, translator)
        yield from as_asset_results(
            report_events(empty, result.context, run_experiment, translator)
        )
        if result.failure is not None:
            raise stage_failure(result.failure)

    return materialize


def _sweep(
    context: Any,
    experiment: Experiment,
    resource: CrucibleResource,
    translator: CrucibleTranslator,
    registry: Registry,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    from crucible_dagster.dagster_plugin.sweep import sweep_materialization
    from crucible_dagster.sweeps.standalone import run_sweep

    result = run_sweep(
        experiment,
        run_id=context.run.run_id,
        registry=registry,
        artifacts=resource.artifacts_dir,
        sinks=[dagster_log_sink(context)],
    )
    paths = {
        fmt: str(Path(result.run_dir) / f"sweep.{ext}")
        for fmt, ext in REPORT_EXTENSIONS.items()
        if (Path(result.run_dir) / f"sweep.{ext}").is_file()
    }
    yield from as_asset_results(
        sweep_materialization(experiment, translator, result.comparison, paths)
    )
    if not result.ok:
        failed = [o.trial.trial_id for o in result.outcomes if o.status != "completed"]
        raise dg.Failure(description=f"sweep trials failed: {', '.join(failed)}")
