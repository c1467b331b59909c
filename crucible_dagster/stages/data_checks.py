"""Check that each example in ``assigns["examples"]`` has its required fields."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import Field, field_validator

from crucible_dagster.runtime.code_refs import CodeRefError, check_ref, resolve
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.stage import Stage, StageError, StageOptions


class DataChecksOptions(StageOptions):
    required_fields: list[str] = Field(
        default_factory=lambda: ["input", "output"],
        description="Fields every example must have, non-empty.",
    )
    fail_fast: bool = Field(
        default=False, description="Fail the stage when any example misses a field."
    )
    checker: str | None = Field(
        default=None,
        description="Dotted path 'pkg.mod:func' of a checker(examples, options) -> issues.",
    )

    @field_validator("checker")
    @classmethod
    def _checker_is_a_function(cls, value: str | None) -> str | None:
        """Resolved when the options are checked (validate, the Dagster loader, stage start)."""
        return None if value is None else check_ref(value, "checker")


def _missing(example: Any, fields: list[str]) -> list[str]:
    if not isinstance(example, Mapping):
        return list(fields)
    return [f for f in fields if example.get(f) in (None, "")]


def load_checker(ref: str) -> Callable[..., list[Any]]:
    """A ``checker(examples, options)`` function, checked to be one before it is ever called."""
    try:
        checker: Callable[..., list[Any]] = resolve(ref, "checker")
    except CodeRefError as exc:
        raise StageError("invalid_checker", ref, str(exc)) from None
    return checker


class DataChecksStage(Stage):
    name = "data_checks"
    description = "Lightweight validation of examples stored in context.assigns['examples']"
    Options = DataChecksOptions

    def run(self, ctx: Context, options: DataChecksOptions) -> Context:
        examples = ctx.assigns.get("examples")
        if not isinstance(examples, list):
            return ctx
        if options.checker:
            issues = list(load_checker(options.checker)(examples, options.model_dump()))
        else:
            issues = []
            for index, example in enumerate(examples):
                missing = _missing(example, options.required_fields)
                if missing:
                    issues.append({"index": index, "example": example, "missing": missing})
        if issues and options.fail_fast:
            raise StageError(
                "data_checks_failed", issues, f"{len(issues)} example(s) miss required fields"
            )
        summary = {
            "total": len(examples),
            "missing_required": len(issues),
            "required_fields": options.required_fields,
        }
        return ctx.put_metric("data_checks", summary).assign("data_issues", issues)
