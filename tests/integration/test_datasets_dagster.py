"""The experiment's dataset under Dagster (issue 24, section 1): loaded once, in the first step,
carried to the next step through the Context IO manager (as Parquet), observed with its content
fingerprint as the dataset asset's data version; a dataset that cannot load fails the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from crucible_dagster import Experiment
from crucible_dagster.dagster_plugin import build_job
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator
from tests.dagster_helpers import ephemeral_instance


def _experiment(path: Path, **dataset: Any) -> Experiment:
    stage = "tests.dataset_helpers:SeenExamples"
    return Experiment.model_validate(
        {
            "id": "qa_dagster",
            "seed": 3,
            "dataset": {
                "name": "qa",
                "provider": "local",
                "options": {"path": str(path)},
                **dataset,
            },
            "pipeline": [{"name": "first", "module": stage}, {"name": "second", "module": stage}],
        }
    )


def test_the_dataset_reaches_every_step_and_is_observed_with_its_fingerprint(
    tmp_path: Path,
) -> None:
    path = tmp_path / "qa.parquet"
    pq.write_table(pa.table({"id": [f"q{i}" for i in range(20)], "x": list(range(20))}), path)
    experiment = _experiment(path, sample={"n": 5})
    key = CrucibleTranslator().get_dataset_asset_spec(experiment)
    assert key is not None
    with ephemeral_instance() as instance:
        result = build_job(experiment).execute_in_process(instance=instance)
        assert result.success
        second = result.output_for_node("second")
        seen = second.metrics["seen"]
        assert seen["rows"] == 5 and seen["columns"] == ["x"] and seen["ids"][0].startswith("q")
        fingerprint = second.assigns["data_fingerprints"]["qa"]
        assert fingerprint == second.metrics["dataset"]["fingerprint"]
        record = instance.get_latest_data_version_record(key.key)
        assert record is not None and record.asset_observation is not None
        named = second.metrics["dataset"]["named_fingerprint"]  # the dataset before its sample
        assert named != fingerprint
        assert (record.asset_observation.tags or {})["dagster/data_version"] == named[:32]
        assert record.asset_observation.metadata["sample_fingerprint"].value == fingerprint
        observations = instance.fetch_observations(key.key, limit=10).records
        assert len(observations) == 1  # loaded once: the second step observes nothing new


def test_a_dataset_that_cannot_load_fails_the_dagster_run(tmp_path: Path) -> None:
    experiment = _experiment(tmp_path / "missing.parquet")
    with ephemeral_instance() as instance:
        result = build_job(experiment).execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        failures = [e for e in result.all_events if e.is_step_failure]
        assert len(failures) == 1
        message = str(failures[0].step_failure_data.user_failure_data.description)
        assert (
            f"stage 'dataset' failed: DatasetError: {tmp_path / 'missing.parquet'}: no such file "
            "or folder (dataset.options.path)" in message
        )
