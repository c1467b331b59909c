"""Execution with the Context IO manager on an instance the test reads back
(``ephemeral_instance``): storage, metadata, failures, config."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from crucible_dagster import Experiment
from crucible_dagster.dagster_plugin import CrucibleResource, build_job
from crucible_dagster.dagster_plugin.resource import OptionChecks
from tests.dagster_helpers import ephemeral_instance


def counting(tmp_path: Path, **third: object) -> Experiment:
    return Experiment.model_validate(
        {
            "id": "counting",
            "pipeline": [
                {
                    "name": "first",
                    "module": "tests.helpers:CountingTable",
                    "options": {"counter_file": str(tmp_path / "a"), "rows": 500},
                },
                {
                    "name": "second",
                    "module": "tests.helpers:CountingTable",
                    "options": {"counter_file": str(tmp_path / "b"), **third},
                },
            ],
        }
    )


def step_events(
    result: dg.ExecuteInProcessResult, kind: dg.DagsterEventType, step: str
) -> list[dg.DagsterEvent]:
    return [e for e in result.all_events if e.event_type == kind and e.step_key == step]


def test_context_crosses_ops_as_json_and_parquet(tmp_path: Path, artifacts_dir: Path) -> None:
    with ephemeral_instance() as instance:
        result = build_job(counting(tmp_path)).execute_in_process(instance=instance)
        assert result.success
        storage = Path(instance.storage_directory()) / "crucible" / result.run_id
        assert (storage / "first" / "result.json").exists()
        blobs = sorted(p.suffix for p in (storage / "blobs").iterdir())
        # first and second write different tables (500 vs 1000 rows) and the same vector: content-addressed once
        assert blobs == [".npy", ".parquet", ".parquet"]
        assert not list(storage.rglob("*.pkl")) and not list(storage.rglob("*.pickle"))
        payload = json.loads((storage / "second" / "result.json").read_text())
        assert payload["schema_version"] == 1
        assert payload["assigns"]["table"]["__crucible__"] == "table"
        ctx = result.output_for_node("second")
        assert ctx.assigns["table"].shape == (1000, 2)
        assert ctx.completed_stages() == ["first", "second"]
        assert ctx.run_id == result.run_id
        manifest = json.loads(
            (artifacts_dir / "counting" / result.run_id / "manifest.json").read_text()
        )
        assert manifest["status"] == "completed" and manifest["orchestrator"] == "dagster"
        assert set(manifest["stages"]) == {"first", "second"}


def test_metrics_are_numeric_output_metadata_one_event_per_op(tmp_path: Path) -> None:
    with ephemeral_instance() as instance:
        result = build_job(counting(tmp_path)).execute_in_process(instance=instance)
        (first,) = step_events(result, dg.DagsterEventType.STEP_OUTPUT, "first")
        assert first.step_output_data.metadata["metric/rows"].value == 500.0
        assert isinstance(
            first.step_output_data.metadata["metric/alpha_used"], dg.FloatMetadataValue
        )
        (output,) = step_events(result, dg.DagsterEventType.STEP_OUTPUT, "second")
        metadata = output.step_output_data.metadata
        # each output shows what its stage changed: rows did, alpha did not
        assert metadata["metric/rows"].value == 1000.0
        assert "metric/alpha_used" not in metadata
        assert metadata["crucible/duration_ms"].value >= 0
        # a successful stage adds no event of its own: its duration rides on the output event
        ours = [
            e
            for e in instance.all_logs(result.run_id)
            if e.step_key == "second" and e.dagster_event is None
        ]
        assert ours == []


def test_config_override_null_default_and_readable_failure(tmp_path: Path) -> None:
    job = build_job(counting(tmp_path))
    with ephemeral_instance() as instance:
        result = job.execute_in_process(
            instance=instance,
            run_config={"ops": {"second": {"config": {"rows": 7, "alpha": None}}}},
        )
        assert result.output_for_node("second").metrics == {"rows": 7, "alpha_used": 0.05}
        bad = job.execute_in_process(
            instance=instance,
            run_config={"ops": {"second": {"config": {"alpha": 1.5}}}},
            raise_on_error=False,
        )
        assert not bad.success
        # every stage's options are checked when the run starts: the first stage never runs
        (failure,) = step_events(bad, dg.DagsterEventType.STEP_FAILURE, "first")
        assert not step_events(bad, dg.DagsterEventType.STEP_START, "second")
        error = failure.step_failure_data.error
        assert "second.alpha: expected a number between 0 and 1, got 1.5" in error.message
        assert (
            failure.step_failure_data.user_failure_data.metadata["crucible/error_type"].value
            == "InvalidOptions"
        )
        warned = build_job(
            counting(tmp_path), resource=CrucibleResource(validate_options=OptionChecks.warn)
        )
        lenient = warned.execute_in_process(
            instance=instance, run_config={"ops": {"second": {"config": {"alpha": 1.5}}}}
        )
        assert lenient.success  # warn mode: the stage runs and the problem is logged
    with pytest.raises(dg.DagsterInvalidConfigError):
        job.execute_in_process(run_config={"ops": {"second": {"config": {"rows": "many"}}}})


def test_stage_exception_fails_the_op_with_stage_error_and_traceback(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    (tmp_path / "flag").touch()
    with ephemeral_instance() as instance:
        result = build_job(
            counting(tmp_path, fail_if_exists=str(tmp_path / "flag"))
        ).execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        (failure,) = step_events(result, dg.DagsterEventType.STEP_FAILURE, "second")
        metadata = failure.step_failure_data.user_failure_data.metadata
        assert metadata["crucible/stage"].value == "second"
        assert metadata["crucible/error_type"].value == "RuntimeError"
        assert "Traceback" in metadata["crucible/traceback"].value
        assert "failing because" in failure.step_failure_data.error.message
        manifest = json.loads(
            (artifacts_dir / "counting" / result.run_id / "manifest.json").read_text()
        )
        assert manifest["status"] == "failed" and manifest["failure"]["stage"] == "second"


def test_unstorable_value_names_the_assign_key() -> None:
    exp = Experiment.model_validate(
        {
            "id": "t",
            "pipeline": [{"name": "u", "module": "tests.helpers:Unstorable"}, {"name": "validate"}],
        }
    )
    with ephemeral_instance() as instance:
        result = build_job(exp).execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        messages = " ".join(
            str(e.step_failure_data.error.message)
            for e in step_events(result, dg.DagsterEventType.STEP_FAILURE, "u")
        )
        assert "assigns['model']" in messages and "builtins.object" in messages


def test_report_materializes_the_asset(tmp_path: Path) -> None:
    exp = Experiment.model_validate(
        {
            "id": "rep",
            "pipeline": [{"name": "validate"}, {"name": "report"}],
            "outputs": [{"name": "summary", "formats": ["markdown", "json"]}],
        }
    )
    with ephemeral_instance() as instance:
        result = build_job(exp).execute_in_process(instance=instance)
        assert result.success
        event = instance.get_latest_materialization_event(
            dg.AssetKey(["crucible", "rep", "summary"])
        )
        assert event is not None
        metadata = event.asset_materialization.metadata
        assert metadata["preview"].value.startswith("# Experiment rep")
        assert Path(str(metadata["path/json"].value)).exists()
