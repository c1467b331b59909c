"""A one-run sweep's report (its comparison) as an asset Dagster can materialize: the
catalog's Materialize button and ``dagster asset materialize --select <key>`` run the sweep
and record its comparison.

The construct is one subsettable ``multi_asset`` over the sweep reports of every experiment in
the code location: materializing a selection runs the sweeps it names with the core sweep
runner, in one step each. A linear experiment's reports are a graph-backed asset of their own,
one op per stage as in its job (``report_graph``); a sweep's job fans its trials out over
dynamic steps, which a graph-backed asset cannot map, so its Materialize stays one step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from crucible_dagster import Experiment, Registry
from crucible_dagster.dagster_plugin.asset_results import as_asset_results
from crucible_dagster.dagster_plugin.ops import dagster_log_sink, log_run_directory
from crucible_dagster.dagster_plugin.resource import RESOURCE_KEY, CrucibleResource
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator
from crucible_dagster.experiment.ir import REPORT_EXTENSIONS

if TYPE_CHECKING:
    from crucible_dagster.dagster_plugin.factory import CompiledExperiment


def reports_multi_asset(
    compiled: Sequence[CompiledExperiment], translator: CrucibleTranslator
) -> dg.AssetsDefinition | None:
    """One subsettable multi-asset over every one-run sweep's report (one op for a whole
    folder: building one per experiment would cost a millisecond each); materializing a
    selection runs just the sweeps it names."""
    if not compiled:
        return None
    owner = {spec.key: c for c in compiled for spec in c.report_specs}
    ids = ",".join(sorted(c.experiment.id for c in compiled))
    digest = hashlib.sha256(ids.encode()).hexdigest()[:10]

    @dg.multi_asset(
        name=f"crucible_reports_{digest}",
        specs=[spec for c in compiled for spec in c.report_specs],
        can_subset=True,
        required_resource_keys={RESOURCE_KEY},
        description="Runs the sweeps whose reports are selected and materializes them",
        op_tags={"crucible/kind": "reports"},
    )
    def materialize(context):  # dagster inspects the (absent) annotation
        resource: CrucibleResource = context.resources.crucible
        chosen = list({id(owner[k]): owner[k] for k in context.selected_asset_keys}.values())
        tag_run(context, chosen, translator)
        failures = []
        for item in chosen:
            try:
                experiment = resource.applied_to(item.experiment)
                registry = item.registry or Registry.default()
                yield from _sweep(context, experiment, resource, translator, registry)
            except dg.Failure as failure:  # the others still run; the step fails at the end
                failures.append(f"{item.experiment.id}: {failure.description}")
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
