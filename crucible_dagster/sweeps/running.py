"""One trial of a sweep: every stage of the pipeline for one grid point and seed.

``run_trial`` is the one way a trial runs: the standalone sweep and the Dagster trial op
both call it, so ``crucible run`` and ``dagster job execute`` give the same numbers.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crucible_dagster.common.jsonsafe import to_jsonable
from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.runtime.registry import Registry
from crucible_dagster.runtime.run_record import RunRecord, read_manifest
from crucible_dagster.runtime.runner import RunResult, run
from crucible_dagster.runtime.telemetry import Sink
from crucible_dagster.sweeps.grid import Trial


@dataclass
class TrialOutcome:
    trial: Trial
    status: str
    metrics: dict[str, Any]
    run_dir: str | None = None
    failure: dict[str, Any] | None = None
    #: which process ran it (``host``, ``pid``): on Celery, which worker
    worker: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(
            {
                "trial": self.trial.to_dict(),
                "status": self.status,
                "metrics": self.metrics,
                "run_dir": self.run_dir,
                "failure": self.failure,
                "worker": self.worker,
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
) -> tuple[TrialOutcome, RunResult]:
    """Run every stage for one trial, with ``ctx.params`` = the grid point and the trial seed."""
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
    )
    outcome = TrialOutcome(
        trial,
        result.status,
        to_jsonable(dict(result.context.metrics)),
        result.run_dir,
        result.failure.to_dict() if result.failure else None,
        worker_identity(),
    )
    return outcome, result


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
    for path in attempts:
        record = RunRecord.open(path)
        if record is not None and record.manifest.get("status") == "running":
            note = "its step was handed to another worker: the process running it stopped"
            record.finish("interrupted", failure={"error_type": "WorkerLost", "message": note})
    return trial_run_dir(sweep_dir, trial, len(attempts) + 1)
