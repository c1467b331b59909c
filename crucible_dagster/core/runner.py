"""The pipeline runner, and ``invoke_stage``: the one stage-invocation path shared with Dagster.

Failure is **returned**, not raised: ``run`` gives a ``RunResult`` whose ``failure``
carries the stage name, error type, message, traceback and the pre-stage context
(the original returned ``{:error, {stage, reason, ctx}}``). Call
``result.raise_for_failure()`` to turn it into a ``PipelineFailed`` exception.
"""

from __future__ import annotations

import re
import time
import traceback
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from crucible_dagster.core.context import Context
from crucible_dagster.core.ir import Experiment, StageDef
from crucible_dagster.core.jsonsafe import to_jsonable
from crucible_dagster.core.quality import blocking_failures
from crucible_dagster.core.registry import (
    Registry,
    StageResolutionError,
    registry_for,
    using_registry,
)
from crucible_dagster.core.rundir import RunDirectory
from crucible_dagster.core.stage import InvalidOptions, StageError, ValidateMode
from crucible_dagster.core.telemetry import JsonlSink, Sink, Telemetry, logger

StageStatus = Literal["completed", "failed", "skipped"]
PLACEHOLDER = re.compile(r"\$\{params\.([A-Za-z0-9_]+)\}")


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


class PipelineFailed(RuntimeError):
    def __init__(self, failure: StageFailure):
        self.failure = failure
        super().__init__(str(failure))


@dataclass(frozen=True)
class StageOutcome:
    status: StageStatus
    context: Context
    duration_ms: float = 0.0
    options: Any = None
    failure: StageFailure | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunResult:
    context: Context
    failure: StageFailure | None = None
    outcomes: tuple[tuple[str, StageOutcome], ...] = ()
    run_dir: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def status(self) -> str:
        return "completed" if self.ok else "failed"

    def raise_for_failure(self) -> Context:
        if self.failure is not None:
            raise PipelineFailed(self.failure)
        return self.context


def substitute_params(value: Any, params: Mapping[str, Any]) -> Any:
    """Replace ``${params.name}``; a whole-string placeholder keeps the parameter's type."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole:
            name = whole.group(1)
            if name not in params:
                raise StageError(
                    "unknown_parameter",
                    name,
                    f"option refers to ${{params.{name}}} but the experiment has no parameter {name!r}",
                )
            return params[name]

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in params:
                raise StageError(
                    "unknown_parameter",
                    name,
                    f"option refers to ${{params.{name}}} but the experiment has no parameter {name!r}",
                )
            return str(params[name])

        return PLACEHOLDER.sub(one, value)
    if isinstance(value, Mapping):
        return {k: substitute_params(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_params(v, params) for v in value]
    return value


def _summary(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {k: to_jsonable(metrics[k]) for k in list(metrics)[:10]}


def _fail(
    ctx: Context,
    name: str,
    error_type: str,
    reason: str,
    message: str,
    telemetry: Telemetry | None,
    *,
    tb: str | None = None,
    details: Any = None,
    started: float | None = None,
) -> StageOutcome:
    failed_ctx = ctx.emit(
        "stage_failed",
        f"Failed stage: {name}",
        f"Stage {name} failed with error: {message}",
        confidence=0.0,
        metadata={"stage": name, "error": message, "error_type": error_type},
        stage_id=name,
    )
    failure = StageFailure(name, error_type, reason, message, failed_ctx, tb, details)
    duration = (time.perf_counter() - started) * 1000 if started is not None else 0.0
    if telemetry is not None:
        telemetry.emit(
            "stage_failed",
            stage=name,
            error_type=error_type,
            message=message,
            duration_ms=round(duration, 3),
        )
    return StageOutcome("failed", failed_ctx, duration, failure=failure)


def invoke_stage(
    ctx: Context,
    stage_def: StageDef,
    *,
    registry: Registry,
    validate_options: ValidateMode = "error",
    telemetry: Telemetry | None = None,
    options: Mapping[str, Any] | None = None,
) -> StageOutcome:
    """Run one stage with the port's semantics; never raises for a stage's own failure.

    ``options`` overrides the StageDef's options (Dagster passes the op config here).
    """
    name = stage_def.name
    if not stage_def.enabled:
        skipped = ctx.emit(
            "stage_skipped",
            f"Skipped stage: {name}",
            f"Stage {name} is disabled (enabled: false)",
            metadata={"stage": name},
            stage_id=name,
        )
        if telemetry is not None:
            telemetry.emit("stage_skipped", stage=name)
        return StageOutcome("skipped", skipped)
    try:
        stage_cls = registry.resolve(stage_def.implementation)
    except StageResolutionError as exc:
        return _fail(
            ctx, name, "StageResolutionError", exc.reason, str(exc), telemetry, details=exc.ref
        )
    raw = dict(stage_def.options if options is None else options)
    ctx = ctx.emit(
        "stage_started",
        f"Starting stage: {name}",
        f"Pipeline executing stage {name}",
        metadata={"stage": name, "options": to_jsonable(raw)},
        stage_id=name,
    )
    if telemetry is not None:
        telemetry.emit("stage_started", stage=name, module=stage_cls.qualified_name())
    started = time.perf_counter()
    try:
        raw = substitute_params(raw, ctx.params)
        parsed, warnings = stage_cls.parse_options(raw, validate_options)
    except InvalidOptions as exc:
        return _fail(
            ctx,
            name,
            "InvalidOptions",
            "invalid_options",
            str(exc),
            telemetry,
            details=exc.errors,
            started=started,
        )
    except StageError as exc:
        return _fail(
            ctx,
            name,
            "StageError",
            exc.reason,
            str(exc),
            telemetry,
            details=exc.details,
            started=started,
        )
    if warnings:
        logger.warning("Stage %s options validation warnings: %s", name, ", ".join(warnings))
    try:
        with using_registry(registry):
            result = stage_cls().run(ctx, parsed)
    except StageError as exc:
        return _fail(
            ctx,
            name,
            type(exc).__name__,
            exc.reason,
            str(exc),
            telemetry,
            tb=traceback.format_exc(),
            details=exc.details,
            started=started,
        )
    except Exception as exc:
        return _fail(
            ctx,
            name,
            type(exc).__name__,
            "exception",
            str(exc) or type(exc).__name__,
            telemetry,
            tb=traceback.format_exc(),
            started=started,
        )
    if not isinstance(result, Context):
        message = f"stage {name!r} returned {type(result).__name__}; run() must return a Context"
        return _fail(ctx, name, "TypeError", "bad_return", message, telemetry, started=started)
    duration = (time.perf_counter() - started) * 1000
    blocking = [v for v in blocking_failures(result) if v not in blocking_failures(ctx)]
    if blocking:
        # The stage did its work (reports are written); an error-severity target asks to fail the run.
        names = ", ".join(str(v["name"]) for v in blocking)
        return _fail(
            result,
            name,
            "QualityTargetFailed",
            "quality_target_failed",
            f"error-severity quality target(s) missed: {names}",
            telemetry,
            details=blocking,
            started=started,
        )
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
    if telemetry is not None:
        telemetry.emit("stage_completed", stage=name, duration_ms=round(duration, 3))
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


def run(
    experiment: Experiment,
    *,
    run_id: str | None = None,
    assigns: Mapping[str, Any] | None = None,
    validate_options: ValidateMode = "error",
    trace: bool = True,
    registry: Registry | None = None,
    params: Mapping[str, Any] | None = None,
    artifacts_root: str | None = None,
    write_run_dir: bool = True,
    run_dir: str | Path | None = None,
    sinks: Iterable[Sink] = (),
    orchestrator: str = "standalone",
) -> RunResult:
    """Run ``experiment`` standalone, stage by stage, stopping at the first failure.

    The run directory is ``<artifacts root>/<experiment_id>/<run_id>`` unless ``run_dir`` names one
    (a sweep puts each trial's under its own folder).
    """
    run_id = run_id or str(uuid.uuid4())
    registry = registry_for(experiment, registry)
    rundir = (
        RunDirectory.at_path(run_dir)
        if run_dir is not None
        else RunDirectory(artifacts_root, experiment.id, run_id)
        if write_run_dir
        else None
    )
    telemetry = Telemetry(sinks, experiment_id=experiment.id, run_id=run_id)
    if rundir is not None:
        telemetry.add_sink(JsonlSink(rundir.telemetry_path))
        rundir.start(
            experiment,
            run_id=run_id,
            params=dict(params or {}),
            seed=experiment.seed,
            orchestrator=orchestrator,
        )
    ctx = new_context(
        experiment,
        run_id=run_id,
        assigns=assigns,
        params=params,
        trace=trace,
        run_dir=str(rundir.path) if rundir else None,
    )
    started = time.perf_counter()
    telemetry.emit("run_started", stages=len(experiment.pipeline))
    outcomes: list[tuple[str, StageOutcome]] = []
    failure = None
    for stage_def in experiment.pipeline:
        outcome = invoke_stage(
            ctx,
            stage_def,
            registry=registry,
            validate_options=validate_options,
            telemetry=telemetry,
        )
        outcomes.append((stage_def.name, outcome))
        ctx = outcome.context
        if rundir is not None:
            rundir.record_stage(
                stage_def.name, outcome.status, outcome.options, outcome.duration_ms
            )
            rundir.write_manifest()  # a killed run shows how far it got
        if outcome.failure is not None:
            failure = outcome.failure
            break
    duration = round((time.perf_counter() - started) * 1000, 3)
    status = "failed" if failure else "completed"
    telemetry.emit(
        f"run_{status}", duration_ms=duration, **({"stage": failure.stage} if failure else {})
    )
    if rundir is not None:
        if ctx.trace is not None:
            rundir.write_text("trace.json", ctx.trace.export("json"))
        rundir.finish(
            status,
            ctx.metrics,
            ctx.assigns.get("data_fingerprints"),
            failure.to_dict() if failure else None,
        )
    if failure is not None:
        failure = replace(failure, context=ctx)
    return RunResult(ctx, failure, tuple(outcomes), str(rundir.path) if rundir else None)
