"""Report assets that Dagster can materialize: the catalog's Materialize button and
``dagster asset materialize --select <key>`` run the experiment and record its reports.

The construct is one subsettable ``multi_asset`` over the report specs of every experiment in
the code location (with their checks as check specs, so each check is declared once):
materializing a selection runs the experiments it names with the core runner, the same
``invoke_stage`` the job's ops call, and turns the report stage's events into
``MaterializeResult`` and ``AssetCheckResult``. The experiment's job (one op per stage)
stays the way to run it with per-stage steps, retries and re-execution from failure; it
materializes the same asset keys. A graph-backed multi-asset would keep per-stage steps in
the asset run too, but would nest every stage's Launchpad config under the asset's graph,
so the job's config and the asset's would differ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from crucible_dagster import Context, Experiment, Registry
from crucible_dagster.dagster_plugin.asset_results import as_asset_results
from crucible_dagster.dagster_plugin.ops import (
    dagster_log_sink,
    dataset_observations,
    log_run_directory,
    note_gate,
    stage_failure,
)
from crucible_dagster.dagster_plugin.report_events import recheck_latest, report_events
from crucible_dagster.dagster_plugin.resource import RESOURCE_KEY, CrucibleResource
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator
from crucible_dagster.experiment.ir import REPORT_EXTENSIONS

if TYPE_CHECKING:
    from crucible_dagster.dagster_plugin.factory import CompiledExperiment


def reports_multi_asset(
    compiled: Sequence[CompiledExperiment], translator: CrucibleTranslator
) -> dg.AssetsDefinition | None:
    """One subsettable multi-asset over every experiment's reports (one op for a whole folder:
    building one per experiment would cost a millisecond each); materializing a selection runs
    just the experiments it names, each with the core runner."""
    if not compiled:
        return None
    owner = {spec.key: c for c in compiled for spec in c.report_specs}
    check_owner = {check.key: c for c in compiled for check in c.check_specs}
    ids = ",".join(sorted(c.experiment.id for c in compiled))
    digest = hashlib.sha256(ids.encode()).hexdigest()[:10]

    @dg.multi_asset(
        name=f"crucible_reports_{digest}",
        specs=[spec for c in compiled for spec in c.report_specs],
        check_specs=[check for c in compiled for check in c.check_specs],
        can_subset=True,
        required_resource_keys={RESOURCE_KEY},
        description="Runs the experiments whose reports are selected and materializes them",
        op_tags={"crucible/kind": "reports"},
    )
    def materialize(context):  # dagster inspects the (absent) annotation
        resource: CrucibleResource = context.resources.crucible
        chosen = list({id(owner[k]): owner[k] for k in context.selected_asset_keys}.values())
        checked = [check_owner[k] for k in context.selected_asset_check_keys]
        tag_run(context, list({id(c): c for c in [*chosen, *checked]}.values()), translator)
        failures = []
        for item in chosen:
            try:
                yield from _materialize_one(context, item, resource, translator)
            except dg.Failure as failure:  # the others still run; the step fails at the end
                failures.append(f"{item.experiment.id}: {failure.description}")
        # a check executed without its report: judged on the latest report's recorded run
        selected = context.selected_asset_keys
        for key in context.selected_asset_check_keys:
            if key.asset_key not in selected:
                item = check_owner[key]
                yield recheck_latest(context.instance, item.experiment, key, resource, translator)
        if failures:
            raise dg.Failure(description="; ".join(failures), allow_retries=False)

    return materialize


def tag_run(
    context: Any, chosen: Sequence[CompiledExperiment], translator: CrucibleTranslator
) -> None:
    """The run of a Materialize carries its experiment's job tags (``crucible/experiment``,
    ``crucible/ir_hash``, ...), so filtering runs by experiment finds it as it finds the job's
    runs; a run materializing several experiments lists them in ``crucible/experiments``."""
    if len(chosen) == 1:
        tags = dict(translator.get_job_spec(chosen[0].experiment).tags)
    elif chosen:
        tags = {translator.tag("experiments"): ",".join(c.experiment.id for c in chosen)[:4000]}
    else:
        return
    context.instance.add_run_tags(context.run.run_id, tags)


def _materialize_one(
    context: Any,
    item: CompiledExperiment,
    resource: CrucibleResource,
    translator: CrucibleTranslator,
) -> Iterator[Any]:
    experiment = resource.applied_to(item.experiment)
    registry = item.registry or Registry.default()
    selected = set(context.selected_asset_keys)
    checks = set(context.selected_asset_check_keys)
    wanted = (
        _sweep(context, experiment, resource, translator, registry)
        if experiment.is_sweep
        else _linear(context, experiment, resource, translator, registry)
    )
    for event in wanted:
        if isinstance(event, dg.MaterializeResult) and event.asset_key not in selected:
            continue
        if isinstance(event, dg.AssetCheckResult) and (
            event.asset_key is None
            or event.check_name is None
            or dg.AssetCheckKey(event.asset_key, event.check_name) not in checks
        ):
            continue
        yield event


def _linear(
    context: Any,
    experiment: Experiment,
    resource: CrucibleResource,
    translator: CrucibleTranslator,
    registry: Registry,
) -> Iterator[Any]:
    from crucible_dagster import run

    result = run(
        experiment,
        run_id=context.run.run_id,  # the run directory is <root>/<experiment>/<run id>
        registry=registry,
        artifacts_root=resource.artifacts_root(),
        validate_options=resource.option_checks,
        sinks=[dagster_log_sink(context)],
        orchestrator="dagster",
    )
    log_run_directory(context, result.run_dir)
    empty = Context(experiment_id=experiment.id, run_id=result.context.run_id)
    note_gate(context, empty, result.context, keep_worse=True)  # as the stage job tags it
    # the data first, so the reports' materializations record its version as their input
    yield from dataset_observations(empty, result.context, experiment, translator)
    yield from as_asset_results(report_events(empty, result.context, experiment, translator))
    if result.failure is not None:
        raise stage_failure(result.failure)


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
        run_id=context.run.run_id,  # the run directory is <root>/<experiment>/<run id>
        registry=registry,
        artifacts=resource.artifacts_root(),
        sinks=[dagster_log_sink(context)],
    )
    log_run_directory(context, result.run_dir)
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
