"""The pipeline runner: a standalone run, stage by stage, over the run driver.

Failure is **returned**, not raised: ``run`` gives a ``RunResult`` whose ``failure``
carries the stage name, error type, message, traceback and the pre-stage context
(the original returned ``{:error, {stage, reason, ctx}}``). Call
``result.raise_for_failure()`` to turn it into a ``PipelineFailed`` exception. One stage's
invocation (``invoke_stage``) is in ``stage_call``, still importable from here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.experiment.unused import unused_settings
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.driver import Run, ended_status
from crucible_dagster.runtime.preflight import first_refused_stage
from crucible_dagster.runtime.registry import Registry, registry_for
from crucible_dagster.runtime.run_dirs import run_directory
from crucible_dagster.runtime.stage import ValidateMode
from crucible_dagster.runtime.stage_call import (
    StageAborted,
    StageFailure,
    StageOutcome,
    StageStatus,
    emit_skipped,
    invoke_stage,
    new_context,
)
from crucible_dagster.runtime.telemetry import Sink, logger

__all__ = [
    "PipelineFailed",
    "RunResult",
    "StageAborted",
    "StageFailure",
    "StageOutcome",
    "StageStatus",
    "emit_skipped",
    "invoke_stage",
    "new_context",
    "run",
]


class PipelineFailed(RuntimeError):
    def __init__(self, failure: StageFailure):
        self.failure = failure
        super().__init__(str(failure))


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
        """``completed``, ``failed``, or ``budget_exhausted`` (every stage ran, the budget
        stopped the calls to the models)."""
        return ended_status(self.context) if self.ok else "failed"

    def raise_for_failure(self) -> Context:
        if self.failure is not None:
            raise PipelineFailed(self.failure)
        return self.context


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
    parent_run_id: str | None = None,
) -> RunResult:
    """Run ``experiment`` standalone, stage by stage, stopping at the first failure.

    The run directory is ``<artifacts root>/<experiment_id>/<run_id>`` unless ``run_dir`` names one
    (a sweep puts each trial's under its own folder). An interrupt (``KeyboardInterrupt``,
    ``SystemExit``) ends the record as ``interrupted`` and propagates.
    """
    run_id = run_id or str(uuid.uuid4())
    registry = registry_for(experiment, registry)
    if write_run_dir or run_dir is not None:
        path = run_dir or run_directory(artifacts_root, experiment.id, run_id)
        fields: dict[str, Any] = {"params": params, "orchestrator": orchestrator}
        if parent_run_id is not None:  # the run this one continues (a resumed training)
            fields["parent_run_id"] = parent_run_id
        driver = Run.start(path, experiment, run_id=run_id, sinks=sinks, **fields)
    else:
        driver = Run.detached(experiment, run_id, sinks)
    ctx = new_context(experiment, run_id=run_id, assigns=assigns, params=params, trace=trace)
    with driver:
        ctx, outcomes = _run_stages(driver, driver.adopt(ctx), registry, validate_options)
    failure = outcomes[-1][1].failure if outcomes else None
    if failure is not None:
        failure = replace(failure, context=ctx)
    return RunResult(ctx, failure, tuple(outcomes), driver.run_dir)


def _run_stages(
    driver: Run, ctx: Context, registry: Registry, validate_options: ValidateMode
) -> tuple[Context, list[tuple[str, StageOutcome]]]:
    """Every stage in order until one fails; the driver records each and ends the run."""
    experiment = ctx.experiment
    assert experiment is not None  # new_context sets it
    for warning in unused_settings(experiment):
        logger.warning("experiment %s: %s", experiment.id, warning)
    outcomes: list[tuple[str, StageOutcome]] = []
    # a stage whose named code or options are refused fails alone, before any stage has run
    refused = (
        first_refused_stage(experiment, registry, ctx.params)
        if validate_options == "error"
        else None
    )
    if refused is None:
        ctx, failure = driver.load_dataset(ctx)
        if failure is not None:
            return ctx, [(failure.stage, StageOutcome("failed", ctx, failure=failure))]
    for stage_def in experiment.pipeline if refused is None else [refused]:
        outcome = driver.step(ctx, stage_def, registry=registry, validate_options=validate_options)
        outcomes.append((stage_def.name, outcome))
        ctx = outcome.context
        if outcome.failure is not None:
            break
    driver.end(ended_status(ctx), ctx)  # a no-op when a failure or the last stage ended it
    return ctx, outcomes
