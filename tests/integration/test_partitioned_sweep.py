"""A sweep as partitions (issue 12): trials materialized one partition at a time, the rest
backfilled, then the comparison; the numbers equal the one-run form's."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from crucible_dagster import Experiment, load_experiment
from crucible_dagster.dagster_plugin import definitions_from_experiments
from crucible_dagster.dagster_plugin.partitioned_sweep import trial_partitions
from crucible_dagster.dagster_plugin.resource import CrucibleResource
from crucible_dagster.sweeps.standalone import run_sweep
from tests.dagster_helpers import ephemeral_instance
from tests.integration.jobs import sweep_experiment
from tests.integration.test_sweep_dagster import _numbers


def partitioned() -> Experiment:
    base = sweep_experiment()
    assert base.sweep is not None
    return base.model_copy(update={"sweep": base.sweep.model_copy(update={"mode": "partitions"})})


def _assets(experiment: Experiment) -> dict[str, dg.AssetsDefinition]:
    defs = definitions_from_experiments([experiment])
    found = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    return {a.key.path[-1]: a for a in found}


def test_partitions_are_configuration_by_seed() -> None:
    definition, trials = trial_partitions(partitioned())
    assert len(definition.get_partition_keys()) == 12 == len(trials)
    assert {k.keys_by_dimension["seed"] for k in definition.get_partition_keys()} == {
        "1",
        "2",
        "3",
        "4",
    }


def test_materialize_partitions_then_the_comparison_equals_the_one_run_form(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    experiment = partitioned()
    assets = _assets(experiment)
    resources: dict[str, Any] = {"crucible": CrucibleResource()}
    _, trials = trial_partitions(experiment)
    keys = list(trials)
    with ephemeral_instance() as instance:

        def trial(key: str) -> None:
            assert dg.materialize(
                [assets["trials"]], partition_key=key, instance=instance, resources=resources
            ).success

        def compare() -> dg.ExecuteInProcessResult:
            upstream = assets["trials"].to_source_asset()
            done = dg.materialize(
                [assets["sweep"], upstream], instance=instance, resources=resources
            )
            assert done.success
            return done

        for key in keys[:2]:  # two points first, as a user would try them
            trial(key)
        partial = compare()
        (early,) = partial.asset_materializations_for_node(assets["sweep"].node_def.name)
        missing = early.metadata["missing_partitions"]
        assert isinstance(missing, dg.JsonMetadataValue) and isinstance(missing.data, list)
        assert len(missing.data) == 10
        for key in keys[2:]:  # then the rest
            trial(key)
        full = compare()
        (done,) = full.asset_materializations_for_node(assets["sweep"].node_def.name)
        assert done.metadata["missing_partitions"].value == []
    import json

    compared = json.loads((artifacts_dir / "light_sweep" / full.run_id / "sweep.json").read_text())
    clean = run_sweep(sweep_experiment(), run_id="clean", artifacts=str(tmp_path / "clean"))
    assert _numbers(compared) == _numbers(clean.comparison)


BACKFILL = """
mutation Backfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on UnauthorizedError { message }
  }
}
"""


@pytest.mark.live
def test_two_partitions_from_the_shell_the_rest_backfilled_through_graphql(
    tmp_path: Path, artifacts_dir: Path
) -> None:

    from tests.conftest import ROOT, subprocess_env
    from tests.integration.test_dagster_cli import asset_materialize
    from tests.integration.test_live_webserver import dagster_daemon, live_webserver_at

    folder = ROOT / "tests" / "data" / "partitioned"
    env_extra = {"CRUCIBLE_EXPERIMENTS_DIR": str(folder)}
    _, trials = trial_partitions(load_experiment(folder / "light_sweep.yaml"))
    keys = list(trials)
    # The daemon starts once the backfill is requested: its backfill iteration runs at start-up
    # and then only every 30 s (Dagster's DEFAULT_DAEMON_INTERVAL_SECONDS, no setting), so a
    # daemon started first made the test wait up to a whole interval for its next tick.
    with live_webserver_at(tmp_path, artifacts_dir, ROOT / "dagster.yaml", **env_extra) as live:
        client, home = live.client, live.home
        env = subprocess_env(
            DAGSTER_HOME=str(home), CRUCIBLE_ARTIFACTS_DIR=str(artifacts_dir), **env_extra
        )

        def materialize(*args: str) -> None:
            asset_materialize(env, *args)

        for key in keys[:2]:
            materialize("--select", "crucible/light_sweep/trials", "--partition", key)
        deadline = time.monotonic() + 120
        while True:  # the webserver answers before its code location has loaded
            data = client._execute(
                BACKFILL,
                {
                    "params": {
                        "partitionNames": keys[2:],
                        "assetSelection": [{"path": ["crucible", "light_sweep", "trials"]}],
                    }
                },
            )
            if data["launchPartitionBackfill"]["__typename"] == "LaunchBackfillSuccess":
                break
            assert time.monotonic() < deadline, data
            time.sleep(1)
        trials_key = dg.AssetKey(["crucible", "light_sweep", "trials"])
        with (
            dagster_daemon(env, tmp_path / "daemon.log"),
            live.instance() as instance,
        ):
            deadline = time.monotonic() + 300
            while True:  # the daemon runs the backfill's runs
                materialized = instance.get_materialized_partitions(trials_key)
                if set(materialized) >= set(keys):
                    break
                assert time.monotonic() < deadline, f"{len(materialized)} of {len(keys)}"
                time.sleep(0.25)
        materialize("--select", "crucible/light_sweep/sweep")
        with live.instance() as instance:
            event = instance.get_latest_materialization_event(
                dg.AssetKey(["crucible", "light_sweep", "sweep"])
            )
            assert event is not None and event.asset_materialization is not None
            assert event.asset_materialization.metadata["missing_partitions"].value == []
            run_id = event.run_id
    import json

    compared = json.loads((artifacts_dir / "light_sweep" / run_id / "sweep.json").read_text())
    plain = sweep_experiment().model_copy(update={"seeds": [1, 2]})  # the seeds of the file
    clean = run_sweep(plain, run_id="clean", artifacts=str(tmp_path / "clean"))
    assert _numbers(compared) == _numbers(clean.comparison)


def test_the_one_run_job_of_a_sweep_in_partitions_runs_its_steps(artifacts_dir: Path) -> None:
    """Its report is the partitioned assets', so its one-run job is a plain job of the same
    steps, which records no asset of its own (its compare step once asked Dagster for the
    asset it is not, and failed after every trial had run)."""
    data = sweep_experiment().model_dump(mode="json", by_alias=True, exclude_defaults=True)
    data.pop("sweep", None)
    data.update(
        dataset={"name": "breast_cancer", "provider": "sklearn"},  # a dataset upstream
        sweep={"metric": "score", "trials_per_step": 4},
        dagster={"sweep": {"mode": "partitions"}},
    )
    experiment = Experiment.model_validate(data)
    defs = definitions_from_experiments([experiment])
    with ephemeral_instance() as instance:
        result = defs.resolve_job_def("light_sweep").execute_in_process(instance=instance)
        assert result.success
        assert result.asset_materializations_for_node("compare_trials") == []
    manifest = (artifacts_dir / "light_sweep" / result.run_id / "manifest.json").read_text()
    assert '"status": "completed"' in manifest
