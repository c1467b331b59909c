"""One stage, run with the port's semantics: ``invoke_stage``, the one stage-invocation path
the run driver uses for the standalone runner and the Dagster ops alike.

A stage's own failure is **returned** in its ``StageOutcome`` (stage name, error type,
message, traceback and the pre-stage context), never raised; interrupts propagate.
"""

from __future__ import annotations

import time
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from crucible_dagster.common.jsonsafe import to_jsonable
from crucible_dagster.experiment.ir import Experiment, StageDef
from crucible_dagster.experiment.params import UnknownParameter, substitute_params
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.metrics import blocking_failures
from crucible_dagster.runtime.registry import Registry, StageResolutionError, using_registry
from crucible_dagster.runtime.stage import InvalidOptions, Stage, StageError, ValidateMode
from crucible_dagster.runtime.telemetry import Telemetry, logger
from crucible_dagster.telemetry.recording import recording

StageStatus = Literal["completed", "failed", "skipped"]


@dataclass(frozen=True)
class StageFailure:
    stage: str
    error_type: str
    reason: str
    message: str
    context: Context
    traceback: str | None = None
    details: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "error_type": self.error_type,
            "reason": self.reason,
            "message": self.message,
            "details": to_jsonable(self.details),
            "traceback": self.traceback,
        }

    def __str__(self) -> str:
        return f"stage {self.stage!r} failed ({self.error_type}): {self.message}"


@dataclass(frozen=True)
class StageOutcome:
    status: StageStatus
    context: Context
    duration_ms: float = 0.0
    options: Any = None
    failure: StageFailure | None = None
    warnings: list[str] = field(default_factory=list)


class StageAborted(Exception):
    """Raised inside ``invoke_stage`` by any step that ends the stage; turned into one failure."""

    def __init__(
        self,
        error_type: str,
        reason: str,
        message: str,
        *,
        details: Any = None,
        tb: str | None = None,
        context: Context | None = None,
    ):
        super().__init__(message)
        self.error_type, self.reason, self.message = error_type, reason, message
        self.details, self.tb, self.context = details, tb, context


def _summary(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {k: to_jsonable(metrics[k]) for k in list(metrics)[:10]}


def _emit(telemetry: Telemetry | None, event: str, **fields: Any) -> None:
    if telemetry is not None:
        telemetry.emit(event, **fields)


def _failed(
    ctx: Context, name: str, abort: StageAborted, telemetry: Telemetry | None, duration: float
) -> StageOutcome:
    failed_ctx = (abort.context or ctx).emit(
        "stage_failed",
        f"Failed stage: {name}",
        f"Stage {name} failed with error: {abort.message}",
        confidence=0.0,
        metadata={"stage": name, "error": abort.message, "error_type": abort.error_type},
        stage_id=name,
    )
    failure = StageFailure(
        name, abort.error_type, abort.reason, abort.message, failed_ctx, abort.tb, abort.details
    )
    _emit(
        telemetry,
        "stage_failed",
        stage=name,
        error_type=abort.error_type,
        message=abort.message,
        duration_ms=round(duration, 3),
    )
    return StageOutcome("failed", failed_ctx, duration, failure=failure)


def emit_skipped(ctx: Context, name: str) -> Context:
    """The trace event of a disabled stage (``enabled: false``)."""
    return ctx.emit(
        "stage_skipped",
        f"Skipped stage: {name}",
        f"Stage {name} is disabled (enabled: false)",
        metadata={"stage": name},
        stage_id=name,
    )


def _skipped(ctx: Context, name: str, telemetry: Telemetry | None) -> StageOutcome:
    _emit(telemetry, "stage_skipped", stage=name)
    return StageOutcome("skipped", emit_skipped(ctx, name))


def _resolve(registry: Registry, stage_def: StageDef) -> type[Stage]:
    try:
        return registry.resolve(stage_def.implementation)
    except StageResolutionError as exc:
        raise StageAborted("StageResolutionError", exc.reason, str(exc), details=exc.ref) from None


def _parse(
    stage_cls: type[Stage], raw: Mapping[str, Any], ctx: Context, mode: ValidateMode
) -> tuple[Any, list[str]]:
    try:
        return stage_cls.parse_options(substitute_params(raw, ctx.params), mode)
    except UnknownParameter as exc:
        raise StageAborted("StageError", "unknown_parameter", str(exc), details=exc.name) from None
    except InvalidOptions as exc:
        raise StageAborted(
            "InvalidOptions", "invalid_options", str(exc), details=exc.errors
        ) from None
    except StageError as exc:
        raise StageAborted("StageError", exc.reason, str(exc), details=exc.details) from None


def _call(stage_cls: type[Stage], ctx: Context, parsed: Any, registry: Registry) -> Context:
    try:
        with using_registry(registry):
            result = stage_cls().run(ctx, parsed)
    except StageError as exc:
        tb = traceback.format_exc()
        # a stage may say what the run records as it fails (the guardrails: with PII redacted)
        context = getattr(exc, "context", None)
        raise StageAborted(
            type(exc).__name__,
            exc.reason,
            str(exc),
            details=exc.details,
            tb=tb,
            context=context if isinstance(context, Context) else None,
        ) from None
    except Exception as exc:
        tb = traceback.format_exc()
        message = str(exc) or type(exc).__name__
        raise StageAborted(type(exc).__name__, "exception", message, tb=tb) from None
    if not isinstance(result, Context):
        message = f"stage {stage_cls.stage_name()!r} returned {type(result).__name__}; run() must return a Context"
        raise StageAborted("TypeError", "bad_return", message)
    blocking = [
        v for v in blocking_failures(result.metrics) if v not in blocking_failures(ctx.metrics)
    ]
    if blocking:
        # The stage did its work (reports are written); an error-severity target asks to fail the run.
        names = ", ".join(str(v["name"]) for v in blocking)
        message = f"error-severity quality target(s) missed: {names}"
        raise StageAborted(
            "QualityTargetFailed",
            "quality_target_failed",
            message,
            details=blocking,
            context=result,
        )
    return result


def invoke_stage(
    ctx: Context,
    stage_def: StageDef,
    *,
    registry: Registry,
    validate_options: ValidateMode = "error",
    telemetry: Telemetry | None = None,
    options: Mapping[str, Any] | None = None,
) -> StageOutcome:
    """Run one stage with the port's semantics; a stage's own failure is returned, never raised.

    ``options`` overrides the StageDef's options (Dagster passes the op config here).
    ``BaseException``s (interrupts, ``SystemExit``) propagate: the caller ends the run record.
    """
    name = stage_def.name
    if not stage_def.enabled:
        return _skipped(ctx, name, telemetry)
    started: float | None = None
    try:
        stage_cls = _resolve(registry, stage_def)
        raw = dict(stage_def.options if options is None else options)
        ctx = ctx.emit(
            "stage_started",
            f"Starting stage: {name}",
            f"Pipeline executing stage {name}",
            metadata={"stage": name, "options": to_jsonable(raw)},
            stage_id=name,
        )
        _emit(telemetry, "stage_started", stage=name, module=stage_cls.qualified_name())
        started = time.perf_counter()
        parsed, warnings = _parse(stage_cls, raw, ctx, validate_options)
        if warnings:
            logger.warning("Stage %s options validation warnings: %s", name, ", ".join(warnings))
        if telemetry is not None:  # the stage's requests go to the run's telemetry.jsonl
            with recording(telemetry.record, stage=name):
                result = _call(stage_cls, ctx, parsed, registry)
        else:
            result = _call(stage_cls, ctx, parsed, registry)
    except StageAborted as abort:
        duration = (time.perf_counter() - started) * 1000 if started is not None else 0.0
        return _failed(ctx, name, abort, telemetry, duration)
    duration = (time.perf_counter() - started) * 1000
    done = result.mark_stage_complete(name).emit(
        "stage_completed",
        f"Completed stage: {name}",
        f"Stage {name} completed successfully",
        metadata={
            "stage": name,
            "results": _summary(result.metrics),
            "duration_ms": round(duration, 3),
        },
        stage_id=name,
    )
    _emit(telemetry, "stage_completed", stage=name, duration_ms=round(duration, 3))
    return StageOutcome("completed", done, duration, options=parsed, warnings=warnings)


def new_context(
    experiment: Experiment,
    *,
    run_id: str | None = None,
    assigns: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    trace: bool = True,
    run_dir: str | None = None,
) -> Context:
    ctx = Context(
        experiment_id=experiment.id,
        run_id=run_id or str(uuid.uuid4()),
        experiment=experiment,
        assigns=dict(assigns or {}),
        params=dict(params or {}),
        run_dir=run_dir,
    )
    return ctx.with_trace() if trace else ctx
