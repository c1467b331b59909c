"""A sweep without Dagster: every trial in turn, then the comparison and the sweep reports."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.runtime.driver import Run
from crucible_dagster.runtime.registry import Registry
from crucible_dagster.runtime.telemetry import Sink
from crucible_dagster.sweeps.finish import finish_sweep
from crucible_dagster.sweeps.grid import expand_grid
from crucible_dagster.sweeps.race_design import most_trials
from crucible_dagster.sweeps.raced import race_summary, race_trials
from crucible_dagster.sweeps.running import TrialOutcome, run_trials


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
    sweep_id = run_id or str(uuid.uuid4())
    trials = [] if _studied(experiment) else expand_grid(experiment)
    sweep = Run.at(
        artifacts,
        experiment,
        run_id=sweep_id,
        steps=[trial_step(t.trial_id) for t in trials],
        trials=[t.to_dict() for t in trials],
    )

    def on_outcome(outcome: TrialOutcome) -> None:
        sweep.record(trial_step(outcome.trial.trial_id), outcome.status)
        if progress is not None:  # a race over data of undeclared size: the count so far
            progress(len(done) + 1, max(total, len(done) + 1), outcome)
        done.append(outcome)

    done: list[TrialOutcome] = []
    total = len(trials) or _study_runs(experiment)
    if experiment.sweep is not None and experiment.sweep.strategy == "racing":
        total = most_trials(experiment, trials) or 0
    if experiment.sweep is not None and experiment.sweep.strategy == "optuna":
        return _run_study(experiment, sweep, registry, sinks, on_outcome)
    if experiment.sweep is not None and experiment.sweep.strategy == "racing":
        raced = race_trials(
            experiment, trials, sweep, registry=registry, sinks=sinks, on_outcome=on_outcome
        )
        for trial in raced.skipped:
            sweep.record(trial_step(trial.trial_id), "skipped")
        for trial in raced.raced_on_data:  # its evaluations are its rounds' trials
            sweep.record(trial_step(trial.trial_id), "completed")
        comparison, _ = finish_sweep(
            experiment,
            raced.survivors_outcomes(),
            sweep,
            all_ok=not raced.failures,
            extra={"race": race_summary(raced)},
            exhausted=raced.budget_spent,
        )
        return SweepResult(sweep_id, str(sweep.path), raced.outcomes, comparison)
    outcomes, failures = run_trials(
        experiment, trials, sweep, registry=registry, sinks=sinks, on_outcome=on_outcome
    )
    comparison, _ = finish_sweep(experiment, outcomes, sweep, all_ok=not failures)
    return SweepResult(sweep_id, str(sweep.path), outcomes, comparison)


def _studied(experiment: Experiment) -> bool:
    return experiment.sweep is not None and experiment.sweep.strategy == "optuna"


def _study_runs(experiment: Experiment) -> int:
    """The most runs a study makes: every trial on every seed (fewer when pruned)."""
    assert experiment.sweep is not None
    return experiment.sweep.study.n_trials * max(1, len(experiment.seeds))


def _run_study(
    experiment: Experiment,
    sweep: Run,
    registry: Registry | None,
    sinks: Iterable[Sink],
    on_outcome: Callable[[TrialOutcome], None],
) -> SweepResult:
    """``strategy: optuna``: the study's trials (each run recorded as the sweep's step as it
    ends), then the comparison of the complete ones, with the study beside it."""
    # optuna loads when a study runs, not with the package
    from crucible_dagster.sweeps.study_run import study_summary, study_trials

    studied = study_trials(experiment, sweep, registry=registry, sinks=sinks, on_outcome=on_outcome)
    comparison, _ = finish_sweep(
        experiment,
        studied.compared_outcomes(),
        sweep,
        all_ok=studied.ok,
        extra={"study": study_summary(experiment, studied.name, studied.slots)},
    )
    assert sweep.path is not None
    return SweepResult(
        str(sweep.manifest.get("run_id")), str(sweep.path), studied.outcomes, comparison
    )
