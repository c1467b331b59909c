"""Acceptance scenarios 7-9 plus the port's runner decisions (disabled stages, exceptions, returns)."""

from __future__ import annotations

import json
import logging

import pytest

from crucible_dagster import Experiment, PipelineFailed, Registry, run
from crucible_dagster.experiment.params import UnknownParameter, substitute_params
from tests.helpers import NeedsInput, StageBoom, StageFail, StageOne

REGISTRY = Registry(
    {"one": StageOne, "fail": StageFail, "boom": StageBoom, "needs_input": NeedsInput}
)


def exp(*stages: dict) -> Experiment:
    return Experiment(id="t", pipeline=list(stages))


def test_scenario_7_happy_path() -> None:
    result = run(exp({"name": "one"}), registry=REGISTRY, write_run_dir=False)
    assert result.ok
    assert result.context.assigns["one"] is True
    assert result.context.completed_stages() == ["one"]


def test_scenario_8_halts_at_first_failure() -> None:
    result = run(exp({"name": "fail"}, {"name": "one"}), registry=REGISTRY, write_run_dir=False)
    assert not result.ok and result.failure is not None
    assert result.failure.stage == "fail"
    assert result.failure.reason == "nope"
    assert "one" not in result.context.assigns
    assert result.context.completed_stages() == []
    with pytest.raises(PipelineFailed):
        result.raise_for_failure()


def test_scenario_8_unknown_stage() -> None:
    result = run(exp({"name": "ghost"}), registry=REGISTRY, write_run_dir=False)
    assert result.failure is not None
    assert (result.failure.stage, result.failure.reason) == ("ghost", "unknown_stage")
    assert result.context.last_event() is not None
    assert result.context.last_event().type == "stage_failed"


def test_scenario_9_validate_options_modes(caplog: pytest.LogCaptureFixture) -> None:
    NeedsInput.calls = 0
    result = run(exp({"name": "needs_input"}), registry=REGISTRY, write_run_dir=False)
    assert result.failure is not None and result.failure.reason == "invalid_options"
    assert result.failure.details == ["missing required option: input"]
    assert NeedsInput.calls == 0
    with caplog.at_level(logging.WARNING, logger="crucible_dagster"):
        result = run(
            exp({"name": "needs_input"}),
            registry=REGISTRY,
            validate_options="warn",
            write_run_dir=False,
        )
    assert result.ok and NeedsInput.calls == 1
    assert (
        "Stage needs_input options validation warnings: missing required option: input"
        in caplog.text
    )
    assert run(
        exp({"name": "needs_input"}), registry=REGISTRY, validate_options="off", write_run_dir=False
    ).ok
    assert NeedsInput.calls == 2


def test_exception_becomes_failure_with_traceback_and_pre_stage_context() -> None:
    result = run(exp({"name": "one"}, {"name": "boom"}), registry=REGISTRY, write_run_dir=False)
    failure = result.failure
    assert failure is not None
    assert failure.error_type == "ZeroDivisionError"
    assert failure.message == "division by zero in boom"
    assert failure.traceback is not None and "ZeroDivisionError" in failure.traceback
    assert failure.context.assigns["one"] is True
    assert failure.context.completed_stages() == ["one"]


def test_disabled_stage_is_skipped_and_recorded() -> None:
    result = run(
        exp({"name": "fail", "enabled": False}, {"name": "one"}),
        registry=REGISTRY,
        write_run_dir=False,
    )
    assert result.ok
    assert result.context.completed_stages() == ["one"]
    assert next(e.type for e in result.context.trace.events) == "stage_skipped"


def test_bad_return_value_is_a_failure() -> None:
    registry = REGISTRY.with_stages({"none": "tests.helpers:ReturnsNone"})
    result = run(exp({"name": "none"}), registry=registry, write_run_dir=False)
    assert result.failure is not None and result.failure.error_type == "TypeError"


def test_unknown_option_key_rejected_in_error_mode() -> None:
    result = run(exp({"name": "validate", "options": {"strcit": True}}), write_run_dir=False)
    assert result.failure is not None
    assert "strcit: unknown field 'strcit'" in result.failure.message
    assert "did you mean 'strict'" in result.failure.message


def test_trace_records_started_and_completed() -> None:
    result = run(exp({"name": "one"}), registry=REGISTRY, write_run_dir=False)
    assert [e.type for e in result.context.trace.events] == ["stage_started", "stage_completed"]
    assert (
        run(exp({"name": "one"}), registry=REGISTRY, trace=False, write_run_dir=False).context.trace
        is None
    )


def test_run_directory_manifest_and_telemetry(artifacts_dir) -> None:
    result = run(exp({"name": "one"}, {"name": "fail"}), registry=REGISTRY, run_id="r1")
    run_dir = artifacts_dir / "t" / "r1"
    assert result.run_dir == str(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["failure"]["stage"] == "fail"
    assert manifest["stages"]["one"]["status"] == "completed"
    assert manifest["experiment_hash"]
    events = [
        json.loads(line)["event"] for line in (run_dir / "telemetry.jsonl").read_text().splitlines()
    ]
    assert events == [
        "run_started",
        "stage_started",
        "stage_completed",
        "stage_started",
        "stage_failed",
        "run_failed",
    ]
    assert (run_dir / "trace.json").exists()
    assert not list(run_dir.glob(".*.tmp"))


def test_param_placeholders() -> None:
    assert substitute_params({"lr": "${params.lr}", "name": "run-${params.lr}"}, {"lr": 0.1}) == {
        "lr": 0.1,
        "name": "run-0.1",
    }
    with pytest.raises(UnknownParameter, match="no parameter 'missing'"):
        substitute_params("${params.missing}", {})


def test_scenario_22_option_validation_of_training_config() -> None:
    registry = Registry({"train": "tests.helpers:TrainStage"})
    result = run(
        exp({"name": "train", "options": {"epochs": 0}}), registry=registry, write_run_dir=False
    )
    assert result.failure is not None
    assert result.failure.details == ["epochs: expected an integer > 0, got 0"]
