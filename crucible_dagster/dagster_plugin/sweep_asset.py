"""A one-run sweep's report (its comparison) as a graph-backed asset, and its job as that
asset's job: ``Materialize`` on the sweep's report and the experiment's job run the same steps.

The graph is the sweep job's own (a grid's plan, trial groups and compare; a race's rounds; a
study's groups of trials), named ``<job>__sweep``, so a step is ``<experiment>__sweep.<step>``
whichever way the sweep runs, with its dynamic fan-out (a graph-backed asset maps dynamic
outputs so long as its output comes from an op downstream of the collect, as the compare step
is). The compare step's ``report`` output is the asset: the report's metadata and the dataset
version the trials loaded (so the report stays synced once the dataset is
materialized). A Materialize run is tagged as the job's runs are (``crucible/experiment``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from crucible_dagster import Experiment
from crucible_dagster.dagster_plugin.io_manager import IO_MANAGER_KEY
from crucible_dagster.dagster_plugin.report_job import LinearJob, asset_job
from crucible_dagster.dagster_plugin.sweep import REPORT_OUT, Compose
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator


def sweep_job(
    experiment: Experiment,
    compose: Compose,
    *,
    translator: CrucibleTranslator,
    resource_defs: Mapping[str, Any],
    executor_def: dg.ExecutorDefinition,
    as_asset: bool = True,
) -> LinearJob:
    """The sweep's report asset over the steps ``compose`` wires (given each step's node name),
    and the job that materializes it: the translator's job spec, the run's resources and
    executor. ``as_asset=False`` (a sweep in partitions, whose assets are the partitioned
    trials and their comparison): the same steps as a plain job."""
    spec = translator.get_job_spec(experiment)
    report = translator.get_sweep_asset_spec(experiment)

    def node(step: str) -> str:
        return translator.get_op_spec(experiment, step).node_name

    @dg.graph(name=f"{spec.name}__sweep", out={REPORT_OUT: dg.GraphOut()})
    def steps() -> Any:
        return {REPORT_OUT: compose(node)}  # the compare step's one output, its report

    if not as_asset:
        plain = steps.to_job(
            name=spec.name,
            description=spec.description,
            resource_defs=dict(resource_defs),
            executor_def=executor_def,
            tags=spec.tags,
        )
        return LinearJob(plain)
    asset = dg.AssetsDefinition(
        node_def=steps,
        keys_by_output_name={REPORT_OUT: report.key},
        specs=[report],
        # the steps' outputs (the trials' outcomes, the comparison) go through the crucible IO
        # manager, as in the job
        resource_defs={IO_MANAGER_KEY: resource_defs[IO_MANAGER_KEY]},
    )
    unresolved = dg.define_asset_job(
        name=spec.name,
        selection=dg.AssetSelection.assets(report.key),
        description=spec.description,
        tags=spec.tags,
        executor_def=executor_def,
    )
    return asset_job(unresolved, asset, resource_defs)
