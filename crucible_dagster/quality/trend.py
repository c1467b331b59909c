"""The gate's metric over the experiment's runs: each run's mean over its units with a 95% CI,
for the report's history plot (the accepted baseline marked)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from crucible_dagster.experiment.ir import RegressionBaseline
from crucible_dagster.run_history.baselines import accepted_run
from crucible_dagster.run_history.records import RecordError
from crucible_dagster.run_history.runs import run_manifests
from crucible_dagster.run_history.scores import metric_units

MAX_POINTS = 50


@dataclass(frozen=True)
class Point:
    run_id: str
    started_at: str
    mean: float
    ci_low: float
    ci_high: float
    n: int
    accepted: bool
    current: bool


def _point(
    run_id: str, started: str, values: list[float], accepted: bool, current: bool
) -> Point | None:
    import numpy as np
    from scipy import stats

    if len(values) < 2:
        return None
    data = np.asarray(values, dtype=float)
    mean = float(data.mean())
    half = float(stats.t.ppf(0.975, data.size - 1)) * float(data.std(ddof=1)) / math.sqrt(data.size)
    return Point(run_id, started, mean, mean - half, mean + half, data.size, accepted, current)


def metric_history(gate: RegressionBaseline, run_dir: Path, current_run_id: str) -> list[Point]:
    """Up to the last ``MAX_POINTS`` runs that completed (and this one), oldest first."""
    experiment_dir = run_dir.parent
    accepted = accepted_run(experiment_dir)
    points = []
    for folder, manifest in run_manifests(experiment_dir):
        current = manifest["run_id"] == current_run_id
        if manifest.get("status") != "completed" and not current:
            continue
        try:
            values = list(metric_units(gate.metric, folder, manifest.get("metrics")).values())
        except RecordError:  # an unusable scores file: that run has no point on the plot
            continue
        point = _point(
            manifest["run_id"],
            str(manifest.get("started_at") or ""),
            values,
            manifest["run_id"] == accepted,
            current,
        )
        if point is not None:
            points.append(point)
    return sorted(points, key=lambda p: p.started_at)[-MAX_POINTS:]
