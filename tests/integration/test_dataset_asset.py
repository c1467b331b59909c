"""The dataset asset (issue 24, section 1 leftovers): materializable, shared by every experiment
naming the dataset; materializing loads the dataset as named (before an experiment's sample)
and records its fingerprint as the data version, its row count and column schema as metadata; a
run on a sample observes the same data version, the sample's fingerprint beside it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crucible_dagster import Experiment
from crucible_dagster.dagster_plugin import definitions_from_experiments
from crucible_dagster.datasets import load_as_named
from tests.dagster_helpers import ephemeral_instance

KEY = dg.AssetKey(["crucible", "datasets", "qa"])
STAGE = "tests.dataset_helpers:SeenExamples"


def experiment(id_: str, path: Path, **dataset: Any) -> Experiment:
    return Experiment.model_validate(
        {
            "id": id_,
            "seed": 3,
            "dataset": {
                "name": "qa",
                "provider": "local",
                "options": {"path": str(path)},
                **dataset,
            },
            "pipeline": [{"name": "seen", "module": STAGE}],
        }
    )


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "qa.parquet"
    table = pa.table({"id": [f"q{i:02d}" for i in range(20)], "x": list(range(20))})
    pq.write_table(table, path)
    return path


def test_one_asset_materializes_the_dataset_as_named_and_runs_observe_its_version(
    data: Path,
) -> None:
    whole, sampled = experiment("qa_all", data), experiment("qa_five", data, sample={"n": 5})
    defs = definitions_from_experiments([whole, sampled])
    dataset_assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    assert [set(a.keys) for a in dataset_assets] == [{KEY}]  # shared: one asset for both
    assert whole.dataset is not None
    named = load_as_named(whole.dataset).fingerprint
    with ephemeral_instance() as instance:
        job = defs.resolve_implicit_global_asset_job_def()
        result = job.execute_in_process(instance=instance, asset_selection=[KEY])
        assert result.success
        [materialization] = result.asset_materializations_for_node(
            next(iter(dataset_assets)).node_def.name
        )
        assert materialization.tags is not None
        assert materialization.tags["dagster/data_version"] == named[:32]
        metadata = materialization.metadata
        assert metadata["dagster/row_count"].value == 20
        schema = metadata["dagster/column_schema"].value
        assert [c.name for c in schema.columns] == ["id", "x"]
        assert metadata["crucible/fingerprint"].value == named

        run = defs.resolve_job_def("qa_five").execute_in_process(instance=instance)
        assert run.success
        seen = run.output_for_node("seen")
        [record] = instance.fetch_observations(KEY, limit=1).records
        observation = record.asset_observation
        assert observation is not None
        assert (observation.tags or {})["dagster/data_version"] == named[:32]  # no flip
        sample = observation.metadata["sample_fingerprint"].value
        assert sample == seen.assigns["data_fingerprints"]["qa"] != named
        assert seen.metrics["dataset"]["named_fingerprint"] == named


def test_materializing_a_dataset_that_cannot_load_fails_naming_the_path_and_field(
    tmp_path: Path,
) -> None:
    defs = definitions_from_experiments([experiment("qa_gone", tmp_path / "gone.parquet")])
    with ephemeral_instance() as instance:
        job = defs.resolve_implicit_global_asset_job_def()
        result = job.execute_in_process(
            instance=instance, asset_selection=[KEY], raise_on_error=False
        )
        assert not result.success
        [failure] = [e for e in result.all_events if e.is_step_failure]
        data = failure.step_failure_data.user_failure_data
        assert data is not None
        assert data.description == (
            f"dataset 'qa' cannot be loaded: {tmp_path / 'gone.parquet'}: no such file or folder "
            "(dataset.options.path)"
        )


def test_two_experiments_declaring_one_name_differently_are_told_apart_in_the_log(
    data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1]}), other)
    with caplog.at_level(logging.WARNING, logger="crucible_dagster"):
        defs = definitions_from_experiments([experiment("a", data), experiment("b", other)])
    assert len([a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]) == 1
    [warning] = [r.getMessage() for r in caplog.records if "declared differently" in r.getMessage()]
    assert str(data) in warning and str(other) in warning


def test_an_inline_experiment_of_a_defs_yaml_reads_data_beside_the_defs_yaml(
    tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The component's inline experiments have no file of their own: their folder is the
    defs.yaml's."""
    from crucible_dagster.dagster_plugin.component import check_inline_experiments

    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    defs_file = tmp_path / "defs.yaml"
    defs_file.write_text("type: x\n")
    entry = {
        "id": "inline_qa",
        "dataset": {"name": "qa", "provider": "local", "options": {"path": data.name}},
        "pipeline": [{"name": "seen", "module": STAGE}],
    }
    [checked] = check_inline_experiments([entry], defs_file, None)
    assert checked.problems == [] and checked.experiment is not None
    assert checked.experiment.dataset is not None
    assert checked.experiment.dataset.options == {"path": str(data)}
