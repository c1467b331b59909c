"""The end of every sweep form (standalone, one Dagster run, partitions): compare the trials,
write the sweep's reports, end its record through the run driver."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.runtime.driver import Run
from crucible_dagster.runtime.run_record import RunStatus
from crucible_dagster.sweeps.running import TrialOutcome
from crucible_dagster.sweeps.spend import sweep_spend


def finish_sweep(
    experiment: Experiment,
    outcomes: list[TrialOutcome],
    sweep: Run,
    *,
    all_ok: bool = True,
    extra: Mapping[str, Any] | None = None,
    exhausted: bool = False,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Compare the trials, write the sweep's reports, and end its record (``completed``;
    ``failed`` when not ``all_ok``; ``budget_exhausted`` when the sweep's budget stopped a
    trial's calls, or ``exhausted``: it stopped a race); the comparison and the reports' paths."""
    # scipy and the report writers load when a sweep is compared, not with the definitions
    from crucible_dagster.reports.sweep import write_sweep_reports
    from crucible_dagster.sweeps.comparison import compare_trials

    assert sweep.path is not None, "a sweep keeps a run directory"
    with sweep:
        comparison = compare_trials(experiment, outcomes)
        comparison.update(extra or {})  # e.g. a raced sweep's race, beside the comparison
        spend = sweep_spend(experiment, outcomes)
        if spend is not None:  # the trials asked backends: what they spent, by configuration
            comparison["cost"] = spend
        sweep.telemetry.emit("sweep_compared", trials=len(outcomes))
        run_id = str(sweep.manifest.get("run_id"))
        paths = write_sweep_reports(experiment, comparison, sweep.path, run_id)
    exhausted = exhausted or any(o.status == "budget_exhausted" for o in outcomes)
    status: RunStatus = "failed" if not all_ok else "budget_exhausted" if exhausted else "completed"
    sweep.end(status, metrics={"sweep": comparison})
    return comparison, paths
