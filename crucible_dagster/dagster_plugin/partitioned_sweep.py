"""A sweep as partitions (``dagster.sweep.mode: partitions``): each trial is a partition
(configuration x seed) of the asset ``crucible/<experiment>/trials``, materialized, retried
and backfilled on its own; the comparison ``crucible/<experiment>/sweep`` reads the latest
materialization of every partition. Extending the grid adds partitions and leaves the old
ones as they are. The one-run form (``mode: run``) stays the default.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import dagster as dg

from crucible_dagster import Context, Experiment, Registry
from crucible_dagster.dagster_plugin.data_versions import dataset_provenance
from crucible_dagster.dagster_plugin.ops import dagster_log_sink, log_run_directory, stage_failure
from crucible_dagster.dagster_plugin.report_events import float_metadata
from crucible_dagster.dagster_plugin.resource import RESOURCE_KEY, CrucibleResource
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator
from crucible_dagster.runtime.driver import Run
from crucible_dagster.runtime.metrics import metric_mean, numeric_metrics
from crucible_dagster.runtime.run_record import run_directory
from crucible_dagster.sweeps.finish import finish_sweep
from crucible_dagster.sweeps.grid import Trial, expand_grid
from crucible_dagster.sweeps.running import TrialOutcome, run_trial

NO_SEED = "none"


def _seed_key(seed: int | None) -> str:
    return NO_SEED if seed is None else str(seed)


def trial_partitions(
    experiment: Experiment,
) -> tuple[dg.MultiPartitionsDefinition, dict[str, Trial]]:
    """The grid as partitions, and each partition key's trial."""
    trials = expand_grid(experiment)
    configs = list(dict.fromkeys(t.config_id for t in trials))
    seeds = list(dict.fromkeys(_seed_key(t.seed) for t in trials))
    definition = dg.MultiPartitionsDefinition(
        {
            "config": dg.StaticPartitionsDefinition(configs),
            "seed": dg.StaticPartitionsDefinition(seeds),
        }
    )
    by_key = {
        str(dg.MultiPartitionKey({"config": t.config_id, "seed": _seed_key(t.seed)})): t
        for t in trials
    }
    return definition, by_key


def partitioned_sweep_assets(
    experiment: Experiment, translator: CrucibleTranslator, registry: Registry
) -> list[dg.AssetsDefinition]:
    partitions, trials = trial_partitions(experiment)
    spec = translator.get_sweep_asset_spec(experiment)
    trials_key = dg.AssetKey([*spec.key.path[:-1], "trials"])
    # the sweep asset's spec gives both assets their attributes (its automation condition is
    # not carried over: the trials are materialized by partition, by hand or by backfill)
    common: dict[str, Any] = {
        "group_name": spec.group_name,
        "kinds": set(spec.kinds),
        "code_version": spec.code_version,
        "owners": list(spec.owners),
        "tags": dict(spec.tags),
    }

    @dg.asset(
        key=trials_key,
        partitions_def=partitions,
        deps=list(spec.deps),
        required_resource_keys={RESOURCE_KEY},
        description=f"One trial of sweep {experiment.id} per partition (configuration x seed)",
        **common,
    )
    def trial(context):  # dagster inspects the (absent) annotation
        resource: CrucibleResource = context.resources.crucible
        spec = trials[str(context.partition_key)]
        root, run_id = resource.artifacts_root(), context.run.run_id
        outcome, result = run_trial(
            experiment,
            spec,
            run_dir=log_run_directory(context, run_directory(root, experiment.id, run_id)),
            run_id=run_id,
            registry=registry,
            sinks=[dagster_log_sink(context)],
            orchestrator="dagster",
        )
        if result.failure is not None:
            raise stage_failure(result.failure, trial=spec.trial_id)
        return _trial_result(context, experiment, translator, outcome, result.context, trials_key)

    @dg.asset(
        key=spec.key,
        deps=[trials_key],
        required_resource_keys={RESOURCE_KEY},
        description=f"Sweep {experiment.id}: the configurations compared over every trial partition",
        **common,
    )
    def comparison(context):  # dagster inspects the (absent) annotation
        yield from _compare(context, experiment, translator, trials_key, trials)

    return [trial, comparison]


def _trial_result(
    context: Any,
    experiment: Experiment,
    translator: CrucibleTranslator,
    outcome: TrialOutcome,
    loaded: Context,
    trials_key: dg.AssetKey,
) -> dg.MaterializeResult:
    """A trial partition's materialization: its numbers and outcome, and as tags the dataset's
    version as this trial loaded it (its input, as Dagster's staleness reads it)."""
    tags = dataset_provenance(context, experiment, translator, loaded, trials_key)
    return dg.MaterializeResult(
        metadata={
            "trial": outcome.trial.trial_id,
            **trial_numbers(experiment, outcome),
            # the per-sample scores stay in the trial's run directory (its
            # predictions.parquet), read back by the comparison: not in the event log
            "outcome": dg.MetadataValue.json({**outcome.to_dict(), "per_sample": None}),
            "run_dir": dg.MetadataValue.path(str(outcome.run_dir)),
        },
        tags=tags,
    )


def trial_numbers(experiment: Experiment, outcome: TrialOutcome) -> dict[str, Any]:
    """A trial's numbers as float metadata the UI plots across partitions: the sweep metric
    first (the mean of a list, per fold, as the comparison takes it), then every other numeric
    metric (at most ``MAX_METRIC_ENTRIES``)."""
    numbers = numeric_metrics(outcome.metrics)
    metric = experiment.sweep.metric if experiment.sweep is not None else None
    if metric is not None:
        with contextlib.suppress(KeyError, ValueError):  # the comparison names the problem
            numbers = {metric: metric_mean(outcome.metrics, metric), **numbers}
    return float_metadata({k: v for k, v in numbers.items() if math.isfinite(v)})


def latest_outcomes(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition_keys: list[str]
) -> dict[str, TrialOutcome]:
    """The newest materialization of each partition, as trial outcomes."""
    found: dict[str, TrialOutcome] = {}
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=partition_keys),
        limit=max(len(partition_keys) * 20, 100),
        ascending=False,
    ).records
    for record in records:
        materialization = record.asset_materialization
        if materialization is None or materialization.partition in found:
            continue
        value = materialization.metadata.get("outcome")
        data = getattr(value, "data", None)
        if isinstance(data, dict) and materialization.partition is not None:
            found[materialization.partition] = TrialOutcome.from_dict(data)
    return found


def _compare(
    context: Any,
    experiment: Experiment,
    translator: CrucibleTranslator,
    trials_key: dg.AssetKey,
    trials: dict[str, Trial],
) -> Iterator[dg.MaterializeResult]:
    from crucible_dagster.dagster_plugin.sweep import sweep_metadata

    resource: CrucibleResource = context.resources.crucible
    found = latest_outcomes(context.instance, trials_key, list(trials))
    missing = [key for key in trials if key not in found]
    outcomes = [found[key] for key in trials if key in found]
    sweep = Run.at(
        resource.artifacts_root(),
        experiment,
        run_id=context.run.run_id,
        orchestrator="dagster",
        steps=[],
        trials=[o.trial.to_dict() for o in outcomes],
        missing_partitions=missing,
    )
    log_run_directory(context, sweep.path)
    comparison, paths = finish_sweep(experiment, outcomes, sweep)
    metadata = {**sweep_metadata(experiment, comparison, paths), "missing_partitions": missing}
    yield dg.MaterializeResult(metadata=metadata)
