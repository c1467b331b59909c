"""The run driver: the one object that owns a run record's whole life.

Every way to run (the standalone runner, a Dagster stage op, the three sweep forms) is a
thin strategy over ``Run``: it opens the run directory exclusively (``Run.start``), or joins
the run another step started (``Run.join``), records each step's outcome (``Run.step`` runs
a stage and records it), and ends the record in a terminal status on any exit: ``with run:``
ends it ``failed`` for an error and ``interrupted`` for an interrupt (any ``BaseException``).
Only this module creates, opens and ends ``RunRecord``s (``tests/test_one_driver.py``).

The Dagster adapter reaches the core through this module and a few public types
(``Context``, ``StageDef``, ``StageFailure``, ``StageOutcome``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from crucible_dagster.experiment.ir import Experiment, StageDef
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.metrics import changed_numeric_metrics
from crucible_dagster.runtime.preflight import stage_option_problems
from crucible_dagster.runtime.registry import Registry
from crucible_dagster.runtime.run_record import (
    RunDirectoryError,
    RunRecord,
    RunStatus,
    run_directory,
)
from crucible_dagster.runtime.stage import ValidateMode
from crucible_dagster.runtime.stage_call import (
    StageFailure,
    StageOutcome,
    emit_skipped,
    invoke_stage,
    new_context,
)
from crucible_dagster.runtime.telemetry import Sink, Telemetry

#: the step a dataset that cannot be loaded fails at (before the first stage)
DATASET_STEP = "dataset"

__all__ = [
    "DATASET_STEP",
    "Run",
    "RunDirectoryError",
    "StageFailure",
    "StageOutcome",
    "changed_metrics",
    "end_open_run",
    "ended_status",
    "first_context",
    "option_problems",
]


class Run:
    """One run's record, from its directory's creation to its terminal status.

    A run without a directory (``Run.detached``: ``write_run_dir=False``) still emits the
    run's telemetry events. ``ctx`` is the run's latest Context: what an exception ends the
    record with (its metrics and trace so far).
    """

    def __init__(self, record: RunRecord | None, telemetry: Telemetry):
        self._record = record
        self.telemetry = telemetry
        self.ctx: Context | None = None
        self.ended = record is not None and record.manifest.get("status") != "running"
        #: this object opened the run directory (``join``: the step that came first)
        self.created = False

    # --- opening -------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        path: str | Path,
        experiment: Experiment,
        *,
        run_id: str,
        sinks: Iterable[Sink] = (),
        **fields: Any,
    ) -> Run:
        """A new run at ``path`` (created exclusively: RunDirectoryError when it exists).
        ``fields`` are ``RunRecord.create``'s: params, orchestrator, steps, manifest extras."""
        record = RunRecord.create(path, experiment, run_id=run_id, sinks=sinks, **fields)
        return cls(record, record.telemetry)

    @classmethod
    def at(
        cls,
        root: str | Path | None,
        experiment: Experiment,
        *,
        run_id: str,
        sinks: Iterable[Sink] = (),
        **fields: Any,
    ) -> Run:
        """``start`` at the run's place: ``<artifacts root>/<experiment id>/<run id>``."""
        path = run_directory(root, experiment.id, run_id)
        return cls.start(path, experiment, run_id=run_id, sinks=sinks, **fields)

    @classmethod
    def detached(cls, experiment: Experiment, run_id: str, sinks: Iterable[Sink] = ()) -> Run:
        """A run that keeps no directory: its telemetry only."""
        telemetry = Telemetry(sinks, experiment_id=experiment.id, run_id=run_id)
        telemetry.emit("run_started", stages=len(experiment.pipeline))
        return cls(None, telemetry)

    @classmethod
    def resume(cls, path: str | Path, *, sinks: Iterable[Sink] = ()) -> Run | None:
        """The run recorded at ``path`` (to end or go on with), or None when none started there."""
        record = RunRecord.open(path, sinks=sinks)
        return None if record is None else cls(record, record.telemetry)

    @classmethod
    def join(
        cls,
        root: str | Path | None,
        experiment: Experiment,
        *,
        run_id: str,
        sinks: Iterable[Sink] = (),
        completed: Iterable[str] = (),
        **fields: Any,
    ) -> Run:
        """The run a step of a multi-step run (a Dagster job) belongs to, started by whichever
        step comes first. ``completed`` are the stages done before this step (in this run, in
        another process, or in the parent run a re-execution starts from): the record ends
        when its last pending stage does."""
        path = run_directory(root, experiment.id, run_id)
        found = cls.resume(path, sinks=sinks)
        if found is None:
            try:
                found = cls.start(path, experiment, run_id=run_id, sinks=sinks, **fields)
                found.created = True
            except RunDirectoryError:
                # another step of this run (a parallel trial) created it a moment ago
                found = _wait_for_run(path, sinks)
        if found._record is not None:
            found._record.mark_completed(completed)
        return found

    # --- what the strategies read ----------------------------------------------------------
    @property
    def path(self) -> Path | None:
        return None if self._record is None else self._record.path

    @property
    def run_dir(self) -> str | None:
        return None if self._record is None else str(self._record.path)

    @property
    def manifest(self) -> Mapping[str, Any]:
        return {} if self._record is None else self._record.manifest

    @property
    def pending_stages(self) -> list[str]:
        return [] if self._record is None else self._record.pending_stages

    def adopt(self, ctx: Context, run_id: str | None = None) -> Context:
        """``ctx`` as this run's: its run id and directory; the one an exception ends with."""
        self.ctx = replace(ctx, run_id=run_id or ctx.run_id, run_dir=self.run_dir)
        return self.ctx

    # --- recording -----------------------------------------------------------------------------
    def record(
        self, step: str, status: str, options: Any = None, duration_ms: float | None = None
    ) -> None:
        """One step's outcome (a stage, or a sweep's trial)."""
        if self._record is not None:
            self._record.record_stage(step, status, options, duration_ms)

    def step(
        self,
        ctx: Context,
        stage_def: StageDef,
        *,
        registry: Registry,
        validate_options: ValidateMode = "error",
        options: Mapping[str, Any] | None = None,
        hand_on: bool = False,
    ) -> StageOutcome:
        """Run one stage and record it; a failed stage ends the run ``failed``, the last
        pending one ends it ``completed``. ``hand_on``: the next stage may run in another
        process, so the record is written for it."""
        self.ctx = ctx
        with self:
            outcome = invoke_stage(
                ctx,
                stage_def,
                registry=registry,
                validate_options=validate_options,
                telemetry=self.telemetry,
                options=options,
            )
            self.ctx = outcome.context
            self.record(stage_def.name, outcome.status, outcome.options, outcome.duration_ms)
            if outcome.failure is not None:
                self.fail(outcome.failure.to_dict(), outcome.failure.context)
            elif self._record is not None and not self.pending_stages:
                self.end(ended_status(outcome.context), outcome.context)
            elif hand_on and self._record is not None:
                self._record.flush()
        return outcome

    def load_dataset(self, ctx: Context) -> tuple[Context, StageFailure | None]:
        """The experiment's dataset in ``ctx`` before the first stage (in the first step only:
        the Context carries it after), its sample ids written to the run directory; a dataset
        that cannot be loaded as declared ends the run ``failed`` at the step ``dataset``."""
        experiment = ctx.experiment
        if experiment is None or experiment.dataset is None:
            return ctx, None
        from crucible_dagster.datasets import DatasetError, load_dataset
        from crucible_dagster.datasets.ids_record import write_ids

        self.ctx = ctx
        with self:
            try:
                loaded = load_dataset(experiment.dataset, ctx.seed)
            except DatasetError as exc:
                failure = StageFailure(DATASET_STEP, "DatasetError", exc.reason, str(exc), ctx)
                self.telemetry.emit("dataset_failed", error_type="DatasetError", message=str(exc))
                self.fail(failure.to_dict(), ctx)
                return ctx, failure
            if self.path is not None:
                write_ids(self.path, loaded.ids_record())
            fingerprints = dict(ctx.assigns.get("data_fingerprints") or {})
            ctx = ctx.assign(loaded.assigns(fingerprints)).put_metric("dataset", loaded.metric())
            self.telemetry.emit(
                "dataset_loaded", rows=len(loaded.id_array), fingerprint=loaded.fingerprint
            )
        self.ctx = ctx
        return ctx, None

    # --- ending ----------------------------------------------------------------------------------
    def end(
        self,
        status: RunStatus,
        ctx: Context | None = None,
        *,
        failure: Any = None,
        metrics: Any = None,
    ) -> None:
        """The terminal status, with the Context's metrics, trace and data fingerprints (or
        ``metrics`` for a run of runs: a sweep). Ending twice keeps the first."""
        if self.ended:
            return
        self.ended = True
        if self._record is None:
            stage = failure.get("stage") if isinstance(failure, Mapping) else None
            self.telemetry.emit(f"run_{status}", **({"stage": stage} if stage else {}))
        elif ctx is not None:
            self._record.finish_context(status, ctx, failure)
        else:
            self._record.finish(status, metrics=metrics, failure=failure)

    def fail(self, failure: Mapping[str, Any], ctx: Context | None = None) -> None:
        self.end("failed", ctx, failure=dict(failure))

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Any exception ends the run: ``failed`` for an error, ``interrupted`` for an interrupt."""
        if exc is None or self.ended:
            return
        self.ended = True
        if self._record is not None:
            self._record.abort(exc, self.ctx)


def ended_status(ctx: Context) -> RunStatus:
    """How a run whose every stage ran ends: ``budget_exhausted`` when its budget stopped the
    calls to its models (a stage's ``budget`` metric says so), else ``completed``."""
    budget = ctx.metrics.get("budget")
    exhausted = isinstance(budget, Mapping) and budget.get("exhausted") is True
    return "budget_exhausted" if exhausted else "completed"


def _wait_for_run(path: Path, sinks: Iterable[Sink]) -> Run:
    sinks = list(sinks)
    for _ in range(100):
        found = Run.resume(path, sinks=sinks)
        if found is not None:
            return found
        time.sleep(0.05)
    raise RunDirectoryError(f"{path} exists but holds no run manifest")


def end_open_run(
    run_dir: str | Path, status: RunStatus, ctx: Context | None = None, *, failure: Any = None
) -> None:
    """End the run recorded at ``run_dir`` from outside its steps, even after its last stage
    ended it: a value the IO manager could not store fails the run after its stage was
    recorded, and the manifest must say so."""
    found = Run.resume(run_dir)
    if found is not None:
        found.ended = False
        found.end(status, ctx, failure=failure)


def first_context(experiment: Experiment, run_id: str) -> Context:
    """The Context a run's first step starts from: traced, with its disabled stages' events."""
    ctx = new_context(experiment, run_id=run_id, trace=True)
    for skipped in (s.name for s in experiment.pipeline if not s.enabled):
        ctx = emit_skipped(ctx, skipped)
    return ctx


def option_problems(
    experiment: Experiment,
    registry: Registry,
    options_of: Callable[[StageDef], Mapping[str, Any]],
) -> list[str]:
    """Every enabled stage's options (``options_of``: this run's) as the stage will check them."""
    problems = []
    for stage_def in experiment.enabled_stages:
        found = stage_option_problems(stage_def, options_of(stage_def), registry)
        problems += [f"{stage_def.name}.{p}" for p in found]
    return problems


def changed_metrics(before: Context, after: Context) -> dict[str, float]:
    """The numeric metrics a stage added or changed (not the whole run's)."""
    return changed_numeric_metrics(before.metrics, after.metrics)
