"""The gate's metric over the experiment's runs: each run's mean over its units with a 95% CI,
for the report's history plot (the accepted baseline marked)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from crucible_dagster.experiment.ir import RegressionBaseline
from crucible_dagster.run_history.baselines import accepted_run
from crucible_dagster.run_history.scores import read_scores, units_of, values_by_unit
from crucible_dagster.runtime.metrics import metric_at
from crucible_dagster.runtime.run_record import MANIFEST, read_manifest

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
    from scipy import stats

    if len(values) < 2:
        return None
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return Point(run_id, started, mean, mean - half, mean + half, n, accepted, current)


def metric_history(gate: RegressionBaseline, run_dir: Path, current_run_id: str) -> list[Point]:
    """Up to the last ``MAX_POINTS`` runs that completed (and this one), oldest first."""
    experiment_dir = run_dir.parent
    accepted = accepted_run(experiment_dir)
    points = []
    for folder in experiment_dir.iterdir():
        if not (folder / MANIFEST).is_file():
            continue
        try:
            manifest = read_manifest(folder)
        except ValueError:
            continue
        current = manifest["run_id"] == current_run_id
        if manifest.get("status") != "completed" and not current:
            continue
        if gate.metric.startswith("scores:"):
            values = list(
                units_of(read_scores(folder), gate.metric.removeprefix("scores:")).values()
            )
        else:
            try:
                values = list(
                    values_by_unit(metric_at(manifest.get("metrics") or {}, gate.metric)).values()
                )
            except KeyError:
                values = []
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
