"""The trials of a sweep: every stage of the pipeline for one grid point and seed.

``run_trials`` is the one trial loop and ``run_trial`` the one way a trial runs: the
standalone sweep, the Dagster trial op (in process, multiprocess or on Celery) and the
partitioned trial asset all call them, so ``crucible run`` and ``dagster job execute`` give
the same numbers (``sweeps.finish`` compares and reports them, once for every form).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from typing_extensions import Unpack

from crucible_dagster.budget import ledger_assigns
from crucible_dagster.common.jsonsafe import to_jsonable
from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.runtime.driver import Run, StageFailure
from crucible_dagster.runtime.metrics import metric_mean
from crucible_dagster.runtime.registry import Registry
from crucible_dagster.runtime.run_record import read_manifest
from crucible_dagster.runtime.runner import RunResult, run
from crucible_dagster.runtime.telemetry import Sink
from crucible_dagster.sweeps.grid import Trial
from crucible_dagster.sweeps.per_sample import score_column, trial_scores


@dataclass
class TrialOutcome:
    trial: Trial
    status: str
    metrics: dict[str, Any]
    run_dir: str | None = None
    failure: dict[str, Any] | None = None
    #: which process ran it (``host``, ``pid``): on Celery, which worker
    worker: dict[str, Any] | None = None
    #: one column of its per-sample table (``sweeps.per_sample``), for a paired comparison
    per_sample: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(
            {
                "trial": self.trial.to_dict(),
                "status": self.status,
                "metrics": self.metrics,
                "run_dir": self.run_dir,
                "failure": self.failure,
                "worker": self.worker,
                "per_sample": self.per_sample,
            }
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialOutcome:
        return cls(
            Trial.from_dict(dict(data["trial"])),
            data["status"],
            dict(data["metrics"]),
            data.get("run_dir"),
            data.get("failure"),
            data.get("worker"),
            data.get("per_sample"),
        )


def run_trial(
    experiment: Experiment,
    trial: Trial,
    *,
    run_dir: str | Path,
    run_id: str,
    registry: Registry | None = None,
    sinks: Iterable[Sink] = (),
    orchestrator: str = "standalone",
    sweep_dir: Path | None = None,
) -> tuple[TrialOutcome, RunResult]:
    """Run every stage for one trial: ``ctx.seed`` is the trial's seed, ``ctx.params`` the grid
    point (and the seed, for ``${params.seed}`` in options). With ``sweep_dir``, the trial's
    backends count against the sweep run's budget (``budget:``), not a budget of its own."""
    seeded = (
        experiment.model_copy(update={"seed": trial.seed}) if trial.seed is not None else experiment
    )
    result = run(
        seeded,
        run_id=run_id,
        params=trial.stage_params,
        registry=registry,
        run_dir=run_dir,
        sinks=sinks,
        orchestrator=orchestrator,
        assigns=ledger_assigns(sweep_dir) if experiment.budget is not None else None,
    )
    column = score_column(experiment.sweep)
    outcome = TrialOutcome(
        trial,
        result.status,
        to_jsonable(dict(result.context.metrics)),
        result.run_dir,
        result.failure.to_dict() if result.failure else None,
        worker_identity(),
        trial_scores(result.context.assigns.get("predictions"), column)
        if column is not None and result.status == "completed"
        else None,
    )
    return outcome, result


class TrialHooks(TypedDict, total=False):
    """The keywords every sweep runner (``run_trials``, ``race_trials``, ``study_trials``,
    ``run_slot``) takes and hands down unchanged to the trial loop: declared once, so the
    runners cannot drift apart. Left out: no registry (the default one), no sinks, the
    ``standalone`` orchestrator, no ``earlier`` runs, no ``on_outcome`` callback."""

    registry: Registry | None
    sinks: Iterable[Sink]
    orchestrator: str
    #: a re-execution's ancestors' run folders: a trial one of them completed is read back
    earlier: Sequence[Path]
    #: told each trial's outcome as it ends (or is read back)
    on_outcome: Callable[[TrialOutcome], None] | None


def run_trials(
    experiment: Experiment,
    trials: Iterable[Trial],
    sweep: Run,
    **hooks: Unpack[TrialHooks],
) -> tuple[list[TrialOutcome], list[tuple[Trial, StageFailure]]]:
    """Every trial in turn, each its own run under the sweep's folder (a failed trial is
    recorded and the next goes on); a trial this sweep or an ``earlier`` run (a re-execution's
    ancestors) completed is read back, not rerun. An exception ends the sweep's record."""
    assert sweep.path is not None, "a sweep keeps a run directory"
    outcomes: list[TrialOutcome] = []
    failures: list[tuple[Trial, StageFailure]] = []
    on_outcome = hooks.get("on_outcome")
    with sweep:
        for trial in trials:
            outcome = completed_attempt([sweep.path, *hooks.get("earlier", ())], trial)
            if outcome is None:
                outcome, result = run_trial(
                    experiment,
                    trial,
                    run_dir=next_attempt_dir(sweep.path, trial),
                    run_id=f"{sweep.manifest.get('run_id')}.{trial.trial_id}",
                    registry=hooks.get("registry"),
                    sinks=hooks.get("sinks", ()),
                    orchestrator=hooks.get("orchestrator", "standalone"),
                    sweep_dir=sweep.path,
                )
                if result.failure is not None:
                    failures.append((trial, result.failure))
            outcomes.append(outcome)
            trial_event(sweep, experiment, outcome)
            if on_outcome is not None:
                on_outcome(outcome)
    return outcomes, failures


def trial_event(sweep: Run, experiment: Experiment, outcome: TrialOutcome) -> None:
    """The trial's end as a ``trial_ended`` event of the sweep: its id, status, the sweep
    metric's value and where it ran."""
    value = None
    if experiment.sweep is not None:
        with contextlib.suppress(KeyError, ValueError):  # a failed trial has none
            value = metric_mean(outcome.metrics, experiment.sweep.metric)
    worker = outcome.worker or {}
    sweep.telemetry.emit(
        "trial_ended",
        trial=outcome.trial.trial_id[:512],
        status=outcome.status,
        success=outcome.status == "completed",
        value=value,
        host=str(worker.get("host") or "")[:512] or None,
        pid=worker.get("pid") if isinstance(worker.get("pid"), int) else None,
    )


def worker_identity() -> dict[str, Any]:
    """This process, as a trial records it: the host and pid of the worker that ran it."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


# --- standalone sweep ---------------------------------------------------------------------------


def trial_run_dir(base: Path, trial: Trial, attempt: int = 1) -> Path:
    """``trials/<id>``; a later attempt of the same trial in the same run (its step handed to
    another worker after the first one died) gets ``trials/<id>.attempt<N>``, never the first's."""
    name = trial.trial_id if attempt == 1 else f"{trial.trial_id}.attempt{attempt}"
    return base / "trials" / name


def trial_attempt_dirs(base: Path, trial: Trial) -> list[Path]:
    """The trial's run directories in this run, first attempt first."""
    found: list[Path] = []
    while (path := trial_run_dir(base, trial, len(found) + 1)).exists():
        found.append(path)
    return found


def completed_attempt(runs: list[Path], trial: Trial) -> TrialOutcome | None:
    """A trial one of ``runs`` completed: an ancestor (re-execution from failure reruns only
    the rest), or this run itself (a step handed to another worker after the first died)."""
    for run_dir in runs:
        for trial_dir in trial_attempt_dirs(run_dir, trial):
            try:
                manifest = read_manifest(trial_dir)
            except ValueError:
                continue
            if manifest.get("status") == "completed":
                metrics = dict(manifest.get("metrics") or {})
                worker = {"host": manifest.get("host"), "pid": manifest.get("pid")}
                return TrialOutcome(trial, "completed", metrics, str(trial_dir), None, worker)
    return None


def next_attempt_dir(sweep_dir: Path, trial: Trial) -> Path:
    """Where this attempt of the trial runs. An earlier attempt in this run that never ended
    (its worker was killed; the broker handed the step on) is ended as ``interrupted`` and
    kept as it was: this attempt writes beside it, never over it."""
    attempts = trial_attempt_dirs(sweep_dir, trial)
    note = "its step was handed to another worker: the process running it stopped"
    for path in attempts:
        earlier = Run.resume(path)
        if earlier is not None and not earlier.ended:
            earlier.end("interrupted", failure={"error_type": "WorkerLost", "message": note})
    return trial_run_dir(sweep_dir, trial, len(attempts) + 1)
