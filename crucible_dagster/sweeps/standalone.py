"""A sweep without Dagster: every trial in turn, then the comparison and the sweep reports."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.runtime.registry import Registry
from crucible_dagster.runtime.run_record import RunRecord, RunStatus, run_directory
from crucible_dagster.runtime.telemetry import Sink
from crucible_dagster.sweeps.comparison import compare_trials
from crucible_dagster.sweeps.grid import expand_grid
from crucible_dagster.sweeps.running import TrialOutcome, run_trial, trial_run_dir


@dataclass
class SweepResult:
    sweep_id: str
    run_dir: str
    outcomes: list[TrialOutcome] = field(default_factory=list)
    comparison: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(o.status == "completed" for o in self.outcomes)


def trial_step(trial_id: str) -> str:
    """The name a trial has among the sweep record's steps."""
    return f"trial:{trial_id}"


def run_sweep(
    experiment: Experiment,
    *,
    run_id: str | None = None,
    registry: Registry | None = None,
    artifacts: str | None = None,
    progress: Callable[[int, int, TrialOutcome], None] | None = None,
    sinks: Iterable[Sink] = (),
) -> SweepResult:
    """Every trial in turn (a failed trial is recorded and the sweep goes on), then the comparison and reports."""
    from crucible_dagster.sweeps.report import write_sweep_reports

    sweep_id = run_id or str(uuid.uuid4())
    trials = expand_grid(experiment)
    record = RunRecord.create(
        run_directory(artifacts, experiment.id, sweep_id),
        experiment,
        run_id=sweep_id,
        steps=[trial_step(t.trial_id) for t in trials],
        trials=[t.to_dict() for t in trials],
    )
    outcomes = []
    try:
        for index, trial in enumerate(trials, start=1):
            outcome, _ = run_trial(
                experiment,
                trial,
                run_dir=trial_run_dir(record.path, trial),
                run_id=f"{sweep_id}.{trial.trial_id}",
                registry=registry,
                sinks=sinks,
            )
            outcomes.append(outcome)
            record.record_stage(trial_step(trial.trial_id), outcome.status)
            if progress is not None:
                progress(index, len(trials), outcome)
        comparison = compare_trials(experiment, outcomes)
        write_sweep_reports(experiment, comparison, record.path, sweep_id)
    except BaseException as exc:
        record.abort(exc)
        raise
    status: RunStatus = "completed" if all(o.status == "completed" for o in outcomes) else "failed"
    record.finish(status, metrics={"sweep": comparison})
    return SweepResult(sweep_id, str(record.path), outcomes, comparison)
