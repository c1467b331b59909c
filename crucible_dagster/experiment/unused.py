"""IR settings that are accepted but have no effect yet, so nobody relies on them unknowingly.

``crucible validate`` prints them as warnings, and every run logs them when it starts.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from crucible_dagster.experiment.ir import Experiment, RegressionBaseline

#: dotted IR paths that are accepted (the original's IR has them) but do nothing yet
NOT_YET_USED = (
    "backend",
    "reliability.ensemble",
    "reliability.hedging",
    "reliability.fairness",
    "reliability.guardrails",
    "reliability.monitoring",
    "reliability.drift",
    "reliability.circuit_breaker",
    "reliability.stats.bootstrap_iterations",
    "reliability.stats.effect_size_type",
    "reliability.stats.options",
    "model_version",
    "training_config",
    "baseline",  # the original's model reference; the regression gate (with 'metric') is used
)


def _set_value(model: BaseModel, path: str) -> Any:
    """The value at ``path`` when the file set it, else None."""
    current: Any = model
    for part in path.split("."):
        if not isinstance(current, BaseModel) or part not in current.model_fields_set:
            return None
        current = getattr(current, part)
    return current


def unused_settings(experiment: Experiment) -> list[str]:
    """One warning per setting the experiment gives that nothing uses yet."""
    return [
        f"{path}: configured but not used (accepted for compatibility; it has no effect yet)"
        for path in NOT_YET_USED
        if _set_value(experiment, path) not in (None, {}, [])
        and not isinstance(_set_value(experiment, path), RegressionBaseline)  # the gate is used
    ]
