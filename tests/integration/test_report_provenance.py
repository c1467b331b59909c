"""A report asset stays synced after a run that changed nothing (issue 26, the report assets'
"Unsynced"), by Dagster's own staleness (``CachingStaleStatusResolver``, what the UI's
``staleStatus`` resolves): made by its job or by Materialize, before or after its dataset's
first materialization; it turns unsynced when the data or the experiment change.

The job's runtime materializations carried no provenance (code version, input versions), so
Dagster called the report "Unsynced: has a new input" while its dataset had no
materialization, and "the dataset has a new materialization" once it had; Materialize recorded
the dataset as ``INITIAL`` (none yet), unsynced once the dataset was materialized."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dagster as dg
from dagster._core.definitions.data_version import CachingStaleStatusResolver
from dagster._core.loader import LoadingContextForTest

from crucible_dagster import Experiment
from crucible_dagster.dagster_plugin import definitions_from_experiments
from tests.dagster_helpers import ephemeral_instance
from tests.integration.test_partition_provenance import DATASET, rewrite_dataset

REPORT = dg.AssetKey(["crucible", "synced", "summary"])
#: a one-run sweep's report, the comparison (made by its compare step, the graph's output)
SWEEP_REPORT = dg.AssetKey(["crucible", "synced_sweep", "sweep"])


def experiment(level: float = 0.8) -> Experiment:
    return Experiment.model_validate(
        {
            "id": "synced",
            "dataset": {"name": "breast_cancer", "provider": "sklearn"},
            "pipeline": [
                {
                    "name": "score",
                    "module": "tests.helpers:NoisyScore",
                    "options": {"level": level},
                },
                {"name": "report"},
            ],
            "outputs": [{"name": "summary", "formats": ["markdown"]}],
            "quality_targets": [{"name": "floor", "metric": "score", "op": ">=", "value": 0.1}],
        }
    )


def swept(level: float = 0.9) -> Experiment:
    """The experiment above as a sweep of two levels over two seeds (a step of trials each)."""
    data = experiment().model_dump(mode="json", by_alias=True, exclude_defaults=True)
    data["pipeline"][0]["options"]["level"] = "${params.level}"
    data.update(
        id="synced_sweep",
        parameters={"level": [0.8, level]},
        seeds=[1, 2],
        sweep={"metric": "score", "trials_per_step": 2},
    )
    data.pop("quality_targets")
    return Experiment.model_validate(data)


def sync(
    defs: dg.Definitions, instance: dg.DagsterInstance, key: dg.AssetKey = REPORT
) -> tuple[str, list[str]]:
    """The report's status and root causes, as the UI's GraphQL resolves them."""
    resolver = CachingStaleStatusResolver(
        instance, defs.resolve_asset_graph(), LoadingContextForTest(instance)
    )
    causes = [
        f"{cause.key.asset_key.to_user_string()} {cause.reason}"
        for cause in resolver.get_stale_root_causes(key)
    ]
    return resolver.get_status(key).value, causes


def by_job(defs: dg.Definitions, instance: dg.DagsterInstance, key: dg.AssetKey = REPORT) -> None:
    job = defs.resolve_job_def(key.path[1])  # the experiment's job, named after it
    assert job.execute_in_process(instance=instance).success


def by_materialize(
    defs: dg.Definitions, instance: dg.DagsterInstance, key: dg.AssetKey = REPORT
) -> None:
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={key})
    assert job.execute_in_process(instance=instance).success


def materialize_dataset(defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={DATASET})
    assert job.execute_in_process(instance=instance).success


def dataset_versions(instance: dg.DagsterInstance) -> list[str | None]:
    records = instance.fetch_materializations(DATASET, limit=10).records
    return [(r.event_log_entry.tags or {}).get("dagster/data_version") for r in records]


def _stays_synced(
    run: Callable[[dg.Definitions, dg.DagsterInstance, dg.AssetKey], None],
    artifacts_dir: Path,
    made: Experiment | None = None,
    key: dg.AssetKey = REPORT,
) -> None:
    defs = definitions_from_experiments([made or experiment()])
    with ephemeral_instance() as instance:
        run(defs, instance, key)  # the dataset never materialized: the run records its version
        assert sync(defs, instance, key) == ("FRESH", [])
        materialize_dataset(defs, instance)  # the same data, from the dataset's Materialize
        assert sync(defs, instance, key) == ("FRESH", [])
        run(defs, instance, key)  # again, on a dataset Dagster has a version of
        assert sync(defs, instance, key) == ("FRESH", [])
        # the first run recorded the dataset's version, which its Materialize found again
        (version, *_) = reversed(dataset_versions(instance))
        assert version is not None and len(version) == 32
        assert dataset_versions(instance) == [version, version]
        event = instance.get_latest_materialization_event(key)
        assert event is not None and event.asset_materialization is not None
        tags = event.asset_materialization.tags or {}
        assert tags["dagster/input_data_version/crucible/datasets/breast_cancer"] == version


def test_a_report_made_by_its_job_stays_synced(artifacts_dir: Path) -> None:
    _stays_synced(by_job, artifacts_dir)


def test_a_report_made_by_materialize_stays_synced(artifacts_dir: Path) -> None:
    _stays_synced(by_materialize, artifacts_dir)


def test_a_sweeps_report_made_by_its_job_stays_synced(artifacts_dir: Path) -> None:
    _stays_synced(by_job, artifacts_dir, swept(), SWEEP_REPORT)


def test_a_sweeps_report_made_by_materialize_stays_synced(artifacts_dir: Path) -> None:
    _stays_synced(by_materialize, artifacts_dir, swept(), SWEEP_REPORT)


def test_a_sweeps_report_turns_unsynced_when_its_data_or_grid_change(artifacts_dir: Path) -> None:
    defs = definitions_from_experiments([swept()])
    with ephemeral_instance() as instance:
        by_job(defs, instance, SWEEP_REPORT)
        assert sync(defs, instance, SWEEP_REPORT) == ("FRESH", [])
        edited = definitions_from_experiments([swept(level=0.95)])  # the grid edited
        assert sync(edited, instance, SWEEP_REPORT) == (
            "STALE",
            ["crucible/synced_sweep/sweep has a new code version"],
        )
        rewrite_dataset(instance)
        assert sync(defs, instance, SWEEP_REPORT) == (
            "STALE",
            ["crucible/datasets/breast_cancer has a new materialization"],
        )


def test_a_report_turns_unsynced_when_its_data_or_experiment_change(artifacts_dir: Path) -> None:
    defs = definitions_from_experiments([experiment()])
    with ephemeral_instance() as instance:
        by_job(defs, instance)
        assert sync(defs, instance) == ("FRESH", [])
        edited = definitions_from_experiments([experiment(level=0.9)])  # the file edited
        assert sync(edited, instance) == (
            "STALE",
            ["crucible/synced/summary has a new code version"],
        )
        rewrite_dataset(instance)  # the data rewritten, and materialized again
        assert sync(defs, instance) == (
            "STALE",
            ["crucible/datasets/breast_cancer has a new materialization"],
        )
