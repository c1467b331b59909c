"""A ``sweep.strategy: optuna`` sweep's trials, slot after slot (the standalone form; a Dagster
step runs its own slots with ``run_slot``), and the study's summary for the sweep's record and
reports: the best trial's parameters and the trials table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from typing_extensions import Unpack

from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.runtime.driver import Run
from crucible_dagster.sweeps.running import TrialHooks, TrialOutcome
from crucible_dagster.sweeps.studied import SlotResult, run_slot, study_blocks
from crucible_dagster.sweeps.study import STUDY_FILE, adopt_earlier_study, open_study, study_name


@dataclass
class StudyTrials:
    """Every slot of the study, in slot order."""

    name: str
    slots: list[SlotResult] = field(default_factory=list)

    @property
    def outcomes(self) -> list[TrialOutcome]:
        return [o for s in self.slots for o in s.outcomes]

    @property
    def ok(self) -> bool:
        return not any(s.failures for s in self.slots)

    def compared_outcomes(self) -> list[TrialOutcome]:
        """The runs compared: the complete trials' (every seed), as a race's survivors."""
        return [o for s in self.slots if s.state == "complete" for o in s.outcomes]


def start_study(experiment: Experiment, sweep: Run, earlier: Sequence[Path] = ()) -> str:
    """Create (or continue: an ancestor's ``optuna.db`` is copied first) the sweep's study; its
    name, which every slot opens it by."""
    assert sweep.path is not None
    adopt_earlier_study(sweep.path, earlier)
    name = study_name_for(experiment, sweep, earlier)
    open_study(experiment, sweep.path, name)
    return name


def study_name_for(experiment: Experiment, sweep: Run, earlier: Sequence[Path] = ()) -> str:
    """The study's name: after the sweep's first run (a re-execution's root, ``earlier[-1]``)."""
    assert sweep.path is not None
    return study_name(experiment, earlier[-1].name if earlier else sweep.path.name)


def study_trials(
    experiment: Experiment,
    sweep: Run,
    **hooks: Unpack[TrialHooks],
) -> StudyTrials:
    """Every slot in turn (a failed trial is recorded and the next slot goes on); an exception
    (a bad storage, a metric that is not there) ends the sweep's record."""
    assert experiment.sweep is not None
    with sweep:
        done = StudyTrials(start_study(experiment, sweep, hooks.get("earlier", ())))
        for slot in range(experiment.sweep.study.n_trials):
            done.slots.append(run_slot(experiment, slot, sweep, name=done.name, **hooks))
    return done


def study_summary(experiment: Experiment, name: str, slots: Sequence[SlotResult]) -> dict[str, Any]:
    """The study for the sweep's record and reports."""
    assert experiment.sweep is not None
    settings = experiment.sweep.study
    complete = [s for s in slots if s.state == "complete" and s.value is not None]
    pick = max if experiment.sweep.direction == "maximize" else min
    best = pick(complete, key=lambda s: s.value or 0.0) if complete else None
    spent = sum(len(s.scores) for s in slots)
    full = settings.n_trials * len(study_blocks(experiment))
    return {
        "study_name": name,
        "sampler": settings.sampler,
        "pruner": settings.pruner,
        "n_trials": settings.n_trials,
        "storage": f"${settings.storage_env}" if settings.storage_env else STUDY_FILE,
        "direction": experiment.sweep.direction,
        "best": None
        if best is None
        else {
            "trial": best.config,
            "number": best.number,
            "value": best.value,
            "params": best.params,
        },
        "complete": len(complete),
        "pruned": sum(s.state == "pruned" for s in slots),
        "failed": sum(s.state == "failed" for s in slots),
        "evaluations": spent,
        "full_evaluations": full,
        "share_of_full": spent / full if full else None,
        "trials": [s.row() for s in sorted(slots, key=lambda s: s.slot)],
    }
