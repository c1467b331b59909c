"""Per-unit scores, kept as Parquet in the run directory so a later run can pair with them.

A unit is what a score was computed on (a fold of a seeded split, a seed, a sample id); the
table is tidy: ``unit_id`` (text), ``group`` and ``value``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from crucible_dagster.common.files import atomic_write_with
from crucible_dagster.run_history.records import SCORES, read_scores_table

if TYPE_CHECKING:
    import pandas as pd

UNIT_COLUMNS = ("block", "sample_id", "unit_id")


def tidy_scores(frame: pd.DataFrame) -> pd.DataFrame:
    """``unit_id, group, value`` from a bench table (``group``, ``value``, ``block`` or
    ``sample_id``); a table without units numbers the observations of each group."""
    import pandas as pd

    unit = next((c for c in UNIT_COLUMNS if c in frame.columns), None)
    units = (
        frame[unit].astype(str)
        if unit
        else frame.groupby("group", sort=False).cumcount().astype(str)
    )
    return pd.DataFrame(
        {
            "unit_id": units.to_numpy(),
            "group": frame["group"].astype(str).to_numpy(),
            "value": frame["value"].astype(float).to_numpy(),
        }
    )


def write_scores(run_dir: str | Path, frame: pd.DataFrame) -> Path:
    path = Path(run_dir) / SCORES
    tidy = tidy_scores(frame)
    return atomic_write_with(path, lambda tmp: tidy.to_parquet(tmp, index=False))


def read_scores(run_dir: str | Path) -> pd.DataFrame | None:
    """The run's scores (``RecordError`` when the file is there but cannot be used)."""
    return read_scores_table(run_dir)


def units_of(frame: pd.DataFrame | None, group: str) -> dict[str, float]:
    """One group's scores by unit id (the mean where a unit has several)."""
    if frame is None or frame.empty:
        return {}
    chosen = frame[frame["group"] == group]
    return {
        str(k): float(v) for k, v in chosen.groupby("unit_id", sort=False)["value"].mean().items()
    }


def values_by_unit(values: Any) -> dict[str, float]:
    """A metric that is a list of numbers, one per unit: units are the positions."""
    if not isinstance(values, list | tuple):
        return {}
    out = {}
    for index, value in enumerate(values):
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                out[str(index)] = float(value)
            except OverflowError:  # an int beyond any float: not a score
                continue
    return out


def metric_units(metric: str, run_dir: str | Path, metrics: Any) -> dict[str, float]:
    """A run's values of the gate's metric by unit: ``scores:<group>`` from its scores.parquet,
    else a metrics path to a list (one number per unit, units are positions)."""
    from crucible_dagster.runtime.metrics import metric_at

    if metric.startswith("scores:"):
        return units_of(read_scores(run_dir), metric.removeprefix("scores:"))
    try:
        return values_by_unit(metric_at(metrics or {}, metric))
    except KeyError:
        return {}
