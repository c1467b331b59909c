"""Acceptance scenarios 10-12 and the PII/secrets guardrail adapter."""

from __future__ import annotations

from typing import Any

import pytest

from crucible_dagster import Experiment, run
from crucible_dagster.experiment.ir import OutputSpec
from crucible_dagster.guardrails.stage import PiiSecretsAdapter, find_sensitive, luhn_valid


def exp(*stages: dict[str, Any]) -> Experiment:
    return Experiment(id="t", pipeline=list(stages))


def test_scenario_10_validate_stage() -> None:
    result = run(
        exp({"name": "validate"}, {"name": "unknown_stage", "enabled": False}), write_run_dir=False
    )
    assert result.context.metrics["validation"]["status"] == "warnings"
    assert (
        "stage 'unknown_stage' is not registered"
        in result.context.metrics["validation"]["warnings"][0]
    )
    strict = run(
        exp(
            {"name": "validate", "options": {"strict": True}},
            {"name": "unknown_stage", "enabled": False},
        ),
        write_run_dir=False,
    )
    assert strict.failure is not None and strict.failure.reason == "validation_failed"
    assert "unknown_stage" in strict.failure.details[0]
    explicit = run(
        exp({"name": "validate"}, {"name": "s", "module": "builtins:str", "enabled": False}),
        write_run_dir=False,
    )
    assert (
        "not a crucible_dagster Stage subclass"
        in explicit.context.metrics["validation"]["warnings"][0]
    )
    assert run(exp({"name": "validate"}), write_run_dir=False).context.metrics["validation"] == {
        "status": "passed"
    }


def test_scenario_11_data_checks() -> None:
    examples = [{"input": "a"}, {"input": "b", "output": "c"}]
    result = run(
        exp({"name": "data_checks", "options": {"required_fields": ["input", "output"]}}),
        assigns={"examples": examples},
        write_run_dir=False,
    )
    assert result.context.metrics["data_checks"] == {
        "total": 2,
        "missing_required": 1,
        "required_fields": ["input", "output"],
    }
    assert result.context.assigns["data_issues"] == [
        {"index": 0, "example": {"input": "a"}, "missing": ["output"]}
    ]
    failing = run(
        exp({"name": "data_checks", "options": {"required_fields": ["output"], "fail_fast": True}}),
        assigns={"examples": [{"input": "a"}]},
        write_run_dir=False,
    )
    assert failing.failure is not None and failing.failure.reason == "data_checks_failed"
    assert failing.failure.details == [
        {"index": 0, "example": {"input": "a"}, "missing": ["output"]}
    ]
    untouched = run(exp({"name": "data_checks"}), write_run_dir=False)
    assert "data_checks" not in untouched.context.metrics


def test_scenario_12_guardrails() -> None:
    ok = run(
        exp({"name": "guardrails", "options": {"adapter": "tests.helpers:EmptyAdapter"}}),
        assigns={"examples": [{"input": "x"}]},
        write_run_dir=False,
    )
    assert ok.context.metrics["guardrails"] == {"total": 1, "violations": 0}
    stage = {
        "name": "guardrails",
        "options": {"adapter": "tests.helpers:ListAdapter", "fail_on_violation": True},
    }
    fail = run(exp(stage), assigns={"examples": [{"input": "x"}]}, write_run_dir=False)
    assert fail.failure is not None and fail.failure.reason == "guardrail_violation"
    assert fail.failure.details == [{"issue": "pii"}]
    stage["options"]["fail_on_violation"] = False  # type: ignore[index]
    soft = run(exp(stage), assigns={"examples": [{"input": "x"}]}, write_run_dir=False)
    assert soft.context.metrics["guardrails"] == {"total": 1, "violations": 1}
    assert soft.context.assigns["guardrail_violations"] == [{"issue": "pii"}]


SECRET_EXAMPLES = [
    {"input": "Contact me at jane.doe@example.com please", "output": "ok"},
    {"input": "Call +1 (415) 555-2671 tomorrow", "output": "fine"},
    {"input": "my card is 4111 1111 1111 1111", "output": "no"},
    {"input": "not a card 4111 1111 1111 1112", "output": "order 12345"},
    {
        "input": "key sk-proj-abcdefghijklmnopqrstuvwxyz123456",
        "meta": {"aws": "AKIAIOSFODNN7EXAMPLE"},
    },
    {"input": "config: api_key = 'Zx9vQ2mN8bT4rL6pW1eY'", "output": "The answer is 42."},
]


def test_pii_adapter_finds_each_kind_without_echoing_it() -> None:
    violations = PiiSecretsAdapter().scan(SECRET_EXAMPLES, {})
    found = {(v["index"], v["field"], v["kind"]) for v in violations}
    assert found == {
        (0, "input", "email"),
        (1, "input", "phone"),
        (2, "input", "credit_card"),
        (4, "input", "api_key"),
        (4, "meta.aws", "api_key"),
        (5, "input", "api_key"),
    }
    text = repr(violations)
    for secret in (
        "jane.doe",
        "555-2671",
        "4111 1111 1111 1111",
        "sk-proj",
        "AKIAIOSFODNN7EXAMPLE",
        "Zx9vQ2mN8bT4rL6pW1eY",
    ):
        assert secret not in text


def test_luhn() -> None:
    assert luhn_valid("4111111111111111") and luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112")


@pytest.mark.parametrize(
    "text",
    ["The meeting is at 10:30 on 2024-05-01.", "Accuracy 0.9754 over 569 rows", "version 1.2.3"],
)
def test_pii_adapter_ignores_ordinary_text(text: str) -> None:
    assert find_sensitive(text) == []


def test_guardrails_stage_with_pii_adapter() -> None:
    result = run(
        exp({"name": "guardrails", "options": {"adapter": "pii"}}),
        assigns={"examples": SECRET_EXAMPLES},
        write_run_dir=False,
    )
    assert result.context.metrics["guardrails"] == {"total": 6, "violations": 6}


def test_report_stage_refuses_paths_that_escape(tmp_path) -> None:
    """The IR refuses such a path; the stage still refuses one that got past it."""
    data: dict[str, Any] = {
        "id": "t",
        "pipeline": [{"name": "report"}],
        "outputs": [{"name": "x", "formats": ["markdown"], "options": {"path": "../../escape.md"}}],
    }
    with pytest.raises(ValueError, match="escapes it"):
        Experiment.model_validate(data)
    experiment = Experiment.model_validate({**data, "outputs": []}).model_copy(
        update={"outputs": [OutputSpec.model_construct(**data["outputs"][0], sink="file")]}
    )
    result = run(experiment, run_id="r")
    assert result.failure is not None and result.failure.reason == "unsafe_path"
    assert not list(tmp_path.rglob("escape.md"))


def test_report_stage_writes_one_file_per_format(artifacts_dir) -> None:
    experiment = Experiment.model_validate(
        {
            "id": "t",
            "pipeline": [{"name": "report"}],
            "outputs": [{"name": "x", "formats": ["markdown", "json"]}],
        }
    )
    result = run(experiment, run_id="r")
    assert result.ok
    assert sorted(p.name for p in (artifacts_dir / "t" / "r").glob("x.*")) == ["x.json", "x.md"]
