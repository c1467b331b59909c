"""A partitioned sweep's trials and the dataset they load (issue 26, item 6): a partition made
before the dataset's first materialization stays synced once the dataset is materialized with
the data it loaded, and turns unsynced when the data change; each trial's numbers are float
metadata the UI plots across partitions."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest
from dagster._core.definitions.data_version import CachingStaleStatusResolver
from dagster._core.loader import LoadingContextForTest

from crucible_dagster import Experiment, load_experiment
from crucible_dagster.dagster_plugin import definitions_from_experiments
from crucible_dagster.dagster_plugin.resource import CrucibleResource
from tests.conftest import ROOT
from tests.dagster_helpers import ephemeral_instance
from tests.integration.test_partitioned_sweep import partitioned

DATASET = dg.AssetKey(["crucible", "datasets", "breast_cancer"])
TRIALS = dg.AssetKey(["crucible", "partitioned", "trials"])
INPUT_TAG = "dagster/input_data_version/crucible/datasets/breast_cancer"


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    """2 levels x 1 seed on the breast-cancer data, as partitions (the browser test's file)."""
    return definitions_from_experiments(
        [load_experiment(ROOT / "tests" / "data" / "ui_plots_sweeps" / "partitioned.yaml")]
    )


def rewrite_dataset(instance: dg.DagsterInstance) -> None:
    """The dataset's data rewritten and materialized again, outside any run: a new version."""
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=DATASET,
            tags={
                "dagster/data_version": "0" * 32,
                "dagster/data_version_is_user_provided": "true",
            },
        )
    )


def _asset(defs: dg.Definitions, key: dg.AssetKey) -> dg.AssetsDefinition:
    (found,) = [
        a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition) and key in a.keys
    ]
    return found


def _materialize_partition(
    trials: dg.AssetsDefinition, key: str, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    result = dg.materialize(
        [trials], partition_key=key, instance=instance, resources={"crucible": CrucibleResource()}
    )
    assert result.success
    return result


def _materialize_trials(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[str]:
    trials = _asset(defs, TRIALS)
    keys = list(trials.partitions_def.get_partition_keys()) if trials.partitions_def else []
    for key in keys:  # one run per partition, as a backfill runs them
        _materialize_partition(trials, key, instance)
    return keys


def _materialize_dataset(defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
    assert dg.materialize([_asset(defs, DATASET)], instance=instance).success


def _sync(
    defs: dg.Definitions, instance: dg.DagsterInstance, keys: list[str]
) -> dict[str, tuple[str, list[str]]]:
    """Each partition's status and root causes, as the UI's GraphQL resolves them."""
    resolver = CachingStaleStatusResolver(
        instance, defs.resolve_asset_graph(), LoadingContextForTest(instance)
    )
    return {
        key: (
            resolver.get_status(TRIALS, key).value,
            [
                f"{cause.key.asset_key.to_user_string()} {cause.reason}"
                for cause in resolver.get_stale_root_causes(TRIALS, key)
            ],
        )
        for key in keys
    }


def _dataset_versions(instance: dg.DagsterInstance) -> list[str | None]:
    records = instance.fetch_materializations(DATASET, limit=10).records
    return [(r.event_log_entry.tags or {}).get("dagster/data_version") for r in records]


def test_partitions_made_before_the_dataset_was_materialized_stay_synced(
    defs: dg.Definitions,
) -> None:
    with ephemeral_instance() as instance:
        keys = _materialize_trials(defs, instance)
        # the first trial recorded the dataset's version as it loaded it: Dagster had none
        (version,) = _dataset_versions(instance)
        assert version is not None and len(version) == 32
        observed = instance.fetch_observations(DATASET, limit=10).records
        assert len(observed) == len(keys)  # every trial observes what it loaded
        for key in keys:
            (record,) = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=TRIALS, asset_partitions=[key]), limit=1
            ).records
            assert (record.event_log_entry.tags or {})[INPUT_TAG] == version
        assert _sync(defs, instance, keys) == {key: ("FRESH", []) for key in keys}
        _materialize_dataset(defs, instance)  # the same data, materialized from the UI
        assert _dataset_versions(instance) == [version, version]
        assert _sync(defs, instance, keys) == {key: ("FRESH", []) for key in keys}


def test_a_materialized_dataset_is_the_input_its_event_pointed_at(defs: dg.Definitions) -> None:
    with ephemeral_instance() as instance:
        _materialize_dataset(defs, instance)
        (dataset,) = instance.fetch_materializations(DATASET, limit=1).records
        keys = _materialize_trials(defs, instance)
        assert len(_dataset_versions(instance)) == 1  # no second record: Dagster had one
        for key in keys:
            (record,) = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=TRIALS, asset_partitions=[key]), limit=1
            ).records
            tags = record.event_log_entry.tags or {}
            assert tags["dagster/input_event_pointer/crucible/datasets/breast_cancer"] == str(
                dataset.storage_id
            )
        assert _sync(defs, instance, keys) == {key: ("FRESH", []) for key in keys}


def test_partitions_turn_unsynced_when_the_dataset_changes(defs: dg.Definitions) -> None:
    with ephemeral_instance() as instance:
        keys = _materialize_trials(defs, instance)
        rewrite_dataset(instance)
        for status, causes in _sync(defs, instance, keys).values():
            assert status == "STALE"
            # (a reported event, not a run's step: Dagster words it "a new materialization")
            assert causes == ["crucible/datasets/breast_cancer has a new materialization"]


def test_each_trial_has_its_numbers_as_floats(defs: dg.Definitions) -> None:
    with ephemeral_instance() as instance:
        keys = _materialize_trials(defs, instance)
        for key in keys:
            (record,) = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=TRIALS, asset_partitions=[key]), limit=1
            ).records
            materialization = record.asset_materialization
            assert materialization is not None
            metadata: dict[str, Any] = dict(materialization.metadata)
            folds = metadata["outcome"].data["metrics"]["fold_scores"]["model"]
            headline = metadata["fold_scores.model"]  # the sweep metric, first after the trial
            assert list(metadata)[:2] == ["trial", "fold_scores.model"]
            assert isinstance(headline, dg.FloatMetadataValue)
            assert headline.value == pytest.approx(sum(folds) / len(folds))
            assert isinstance(metadata["score"], dg.FloatMetadataValue)
            assert metadata["dataset.rows"].value == 569


def test_a_sweep_without_a_dataset_records_no_dataset_input(artifacts_dir: Any) -> None:
    experiment: Experiment = partitioned()  # tests/integration/jobs' light sweep, no dataset
    defs = definitions_from_experiments([experiment])
    (trials,) = [
        a
        for a in defs.assets or []
        if isinstance(a, dg.AssetsDefinition) and a.key.path[-1] == "trials"
    ]
    assert trials.partitions_def is not None
    key = trials.partitions_def.get_partition_keys()[0]
    with ephemeral_instance() as instance:
        result = _materialize_partition(trials, key, instance)
        (materialization,) = result.asset_materializations_for_node(trials.node_def.name)
        assert not any(t.startswith("dagster/input_") for t in materialization.tags or {})
        assert instance.get_asset_keys() == [trials.key]  # nothing recorded on another asset
