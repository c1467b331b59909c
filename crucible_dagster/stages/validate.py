"""Pre-flight check that every stage of the pipeline resolves to a Stage class."""

from __future__ import annotations

from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.registry import StageResolutionError, current_registry
from crucible_dagster.runtime.stage import Stage, StageError, StageOptions


class ValidateOptions(StageOptions):
    strict: bool = False


class ValidateStage(Stage):
    name = "validate"
    description = "Pre-flight validation that all pipeline stages can be resolved and loaded"
    Options = ValidateOptions

    def run(self, ctx: Context, options: ValidateOptions) -> Context:
        registry = current_registry()
        problems: list[str] = []
        pipeline = ctx.experiment.pipeline if ctx.experiment else []
        for stage_def in pipeline:
            try:
                registry.resolve(stage_def.implementation)
            except StageResolutionError as exc:
                problems.append(str(exc))
        if not problems:
            return ctx.put_metric("validation", {"status": "passed"})
        if options.strict:
            raise StageError(
                "validation_failed", problems, "validation failed: " + "; ".join(problems)
            )
        return ctx.put_metric("validation", {"status": "warnings", "warnings": problems})
