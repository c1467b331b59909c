"""One trial of a sweep: every stage of the pipeline for one grid point and seed.

``run_trial`` is the one way a trial runs: the standalone sweep and the Dagster trial op
both call it, so ``crucible run`` and ``dagster job execute`` give the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crucible_dagster.common.jsonsafe import to_jsonable
from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.runtime.registry import Registry
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

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(
            {
                "trial": self.trial.to_dict(),
                "status": self.status,
                "metrics": self.metrics,
                "run_dir": self.run_dir,
                "failure": self.failure,
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
    )
    return outcome, result


# --- standalone sweep ---------------------------------------------------------------------------


def trial_run_dir(base: Path, trial: Trial) -> Path:
    return base / "trials" / trial.trial_id
