"""Reading the metrics map: dotted paths, finite numbers, flattened numeric views.

Stages write nested metrics (``metrics["cv"]["knn"]["mean"]``); quality targets, sweeps,
reports and the Dagster adapter all read them the same way, from here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from crucible_dagster.common.jsonsafe import to_jsonable

#: where quality.targets stores its verdicts in a run's metrics; the runtime and the run
#: history read them from there without importing the quality package, which sits above them
QUALITY_TARGETS_KEY = "quality_targets"


def metric_at(metrics: Mapping[str, Any], path: str) -> Any:
    """``cv.logistic_regression.mean`` -> metrics["cv"]["logistic_regression"]["mean"]; KeyError if absent."""
    current: Any = metrics
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif (  # ASCII digits only: int() refuses some that isdigit() accepts ('²')
            isinstance(current, list)
            and part.isascii()
            and part.isdigit()
            and int(part) < len(current)
        ):
            current = current[int(part)]
        else:
            raise KeyError(path)
    return current


def finite_number(value: Any) -> float | None:
    """``value`` as a float when it is a finite real number (not a bool), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def numbers_at(metrics: Mapping[str, Any], path: str) -> list[float]:
    """The finite numbers at ``path`` (one number or a list); ValueError when there are none."""
    value = metric_at(metrics, path)
    values = value if isinstance(value, list) else [value]
    numbers = [n for n in (finite_number(v) for v in values) if n is not None]
    if not numbers:
        raise ValueError(f"metric {path!r} is not a number or a list of numbers")
    return numbers


def metric_mean(metrics: Mapping[str, Any], path: str) -> float:
    """The mean of the finite numbers at ``path`` (one number, or a list per fold): how a
    sweep scores a trial; KeyError and ValueError as ``numbers_at``."""
    values = numbers_at(metrics, path)
    return sum(values) / len(values)


def flatten_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Every leaf of ``metrics`` under its dotted path (lists are leaves)."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        else:
            flat[prefix] = value

    walk("", to_jsonable(metrics))
    return flat


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Every number in ``metrics`` under its dotted path (lists are not expanded)."""
    return {
        k: float(v)
        for k, v in flatten_metrics(metrics).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def changed_numeric_metrics(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> dict[str, float]:
    """The numbers in ``after`` that are new or differ from ``before``: what one stage added."""
    earlier = numeric_metrics(before) if before else {}
    return {k: v for k, v in numeric_metrics(after).items() if earlier.get(k) != v}


def blocking_failures(metrics: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Verdicts (as stored in metrics) of error-severity targets that missed and ask to fail the run."""
    stored = metrics.get(QUALITY_TARGETS_KEY) or []
    return [
        v
        for v in stored
        if isinstance(v, Mapping)
        and not v.get("passed")
        and v.get("severity") == "error"
        and v.get("fail_run")
    ]
