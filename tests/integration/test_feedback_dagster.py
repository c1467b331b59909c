"""Feedback under Dagster (issue 29): the feedback stage is an op of the experiment's job, and
``daily_from`` adds the asset ``crucible/<id>/feedback`` partitioned by day, each day a run
directory of its own with that day's events, counts and quality as metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from crucible_dagster import Experiment
from crucible_dagster.dagster_plugin import build_job, compile_experiment
from crucible_dagster.dagster_plugin.resource import CrucibleResource
from tests.dagster_helpers import ephemeral_instance

pytestmark = pytest.mark.integration


def _events(path: Path) -> Path:
    rows = [
        {"id": "a", "feedback_value": True, "timestamp": "2026-12-01T09:00:00Z",
         "model_version": "v1", "input": "mail me at ana@example.org"},
        {"id": "b", "feedback_value": False, "timestamp": "2026-12-01T10:00:00Z",
         "model_version": "v1"},
        {"id": "c", "feedback_type": "rating", "feedback_value": 4,
         "timestamp": "2026-12-02T10:00:00Z", "model_version": "v1"},
        {"id": "", "feedback_value": True, "timestamp": "2026-12-01T11:00:00Z"},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _experiment(events: Path, **feedback: Any) -> Experiment:
    return Experiment.model_validate(
        {
            "id": "fb_daily",
            "reliability": {"feedback": {"source": str(events), **feedback}},
            "pipeline": [{"name": "ingest", "module": "feedback"}],
        }
    )


def test_the_feedback_stage_is_an_op_of_the_experiments_job(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    experiment = _experiment(_events(tmp_path / "events.jsonl"))
    with ephemeral_instance() as instance:
        result = build_job(experiment).execute_in_process(instance=instance)
    assert result.success
    run_dir = artifacts_dir / "fb_daily" / result.run_id
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert manifest["metrics"]["feedback"]["kept"] == 3
    assert manifest["metrics"]["feedback"]["invalid"] == 1


def test_each_day_is_a_partition_with_its_own_run_directory_and_quality(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    experiment = _experiment(_events(tmp_path / "events.jsonl"), daily_from="2026-11-30")
    compiled = compile_experiment(experiment)
    (asset,) = [a for a in compiled.assets if isinstance(a, dg.AssetsDefinition)
                and dg.AssetKey(["crucible", "fb_daily", "feedback"]) in a.keys]  # fmt: skip
    assert asset.partitions_def is not None
    assert asset.partitions_def.get_partition_keys()[:2] == ["2026-11-30", "2026-12-01"]
    resources = {"crucible": CrucibleResource()}
    with ephemeral_instance() as instance:
        first = dg.materialize([asset], partition_key="2026-12-01", instance=instance,
                               resources=resources)  # fmt: skip
        second = dg.materialize([asset], partition_key="2026-12-02", instance=instance,
                                resources=resources)  # fmt: skip
        again = dg.materialize([asset], partition_key="2026-12-01", instance=instance,
                               resources=resources)  # fmt: skip
    (day1,) = first.get_asset_materialization_events()
    metadata = day1.materialization.metadata
    assert metadata["dagster/row_count"].value == 2
    assert metadata["crucible/invalid"].value == 1 and metadata["crucible/other_day"].value == 1
    quality_value = metadata["crucible/quality"]
    assert isinstance(quality_value, dg.JsonMetadataValue) and isinstance(quality_value.data, list)
    (quality,) = quality_value.data
    assert quality["thumbs_up"]["share"] == 0.5 and quality["day"] == "2026-12-01"
    run_dir = Path(str(metadata["crucible/run_dir"].value))
    assert run_dir.parent == artifacts_dir / "fb_daily"
    assert run_dir.name == f"{first.run_id}-2026-12-01"
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "completed"
    assert b"ana@example.org" not in (run_dir / "feedback.parquet").read_bytes()
    (day2,) = second.get_asset_materialization_events()
    assert day2.materialization.metadata["dagster/row_count"].value == 1
    (redo,) = again.get_asset_materialization_events()
    # the same day's events again: the same data version, in a new run directory
    versions = [e.materialization.tags or {} for e in (redo, day1)]
    assert versions[0]["dagster/data_version"] == versions[1]["dagster/data_version"]
    assert len(list((artifacts_dir / "fb_daily").iterdir())) == 3


def test_a_day_whose_source_is_gone_fails_with_one_line_and_a_failed_record(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    events = _events(tmp_path / "events.jsonl")
    experiment = _experiment(events, daily_from="2026-12-01")
    (asset,) = [a for a in compile_experiment(experiment).assets
                if isinstance(a, dg.AssetsDefinition)]  # fmt: skip
    events.unlink()
    with ephemeral_instance() as instance:
        result = dg.materialize([asset], partition_key="2026-12-01", instance=instance,
                                resources={"crucible": CrucibleResource()}, raise_on_error=False)  # fmt: skip
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert f"reliability.feedback.source: {events}: no such file" in str(
        failure.event_specific_data
    )
    (run_dir,) = (artifacts_dir / "fb_daily").iterdir()
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "failed"


def test_disabled_feedback_has_no_daily_asset(tmp_path: Path) -> None:
    """Review: its day's run ingests nothing, so its materialization had no figures to show."""
    experiment = _experiment(_events(tmp_path / "events.jsonl"), daily_from="2026-12-01",
                             enabled=False)  # fmt: skip
    keys = [k for a in compile_experiment(experiment).assets if isinstance(a, dg.AssetsDefinition)
            for k in a.keys]  # fmt: skip
    assert dg.AssetKey(["crucible", "fb_daily", "feedback"]) not in keys
