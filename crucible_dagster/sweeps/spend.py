"""What a sweep spent, per configuration: requests, tokens and cost from each trial's predict
metrics (``metrics.predictions``), summed over its seeds and variants, beside the budget.

The sweep's reports show it next to the comparison, so "is the better prompt worth its tokens"
is read on one page. A sweep whose trials asked no backend (a classifier sweep) has none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.sweeps.running import TrialOutcome

COUNTS = ("requests", "cached", "prompt_tokens", "completion_tokens")
#: a count or amount beyond this in a record read back is not a real one: counted as nothing
ABSURD = 10**15


def _count(value: Any) -> int:
    whole = isinstance(value, int) and not isinstance(value, bool)
    return value if whole and 0 < value <= ABSURD else 0


def _amount(value: Any) -> float:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if number and 0 <= value <= ABSURD else 0.0  # NaN fails both


def _add(row: dict[str, Any], variant: Mapping[str, Any]) -> None:
    """One variant's predict summary into ``row``: requests sent are the samples not answered
    from the cache, plus the retries and hedges."""
    samples, cached = _count(variant.get("samples")), _count(variant.get("cached"))
    row["requests"] += max(samples - cached, 0) + _count(variant.get("extra_requests"))
    row["cached"] += cached
    row["prompt_tokens"] += _count(variant.get("prompt_tokens"))
    row["completion_tokens"] += _count(variant.get("completion_tokens"))
    row["cost"] += _amount(variant.get("cost"))


def sweep_spend(experiment: Experiment, outcomes: Sequence[TrialOutcome]) -> dict[str, Any] | None:
    """``{configurations: {id: {trials, requests, cached, prompt_tokens, completion_tokens,
    cost}}, total, budget}``; None when no trial has predictions."""
    rows: dict[str, dict[str, Any]] = {}
    for outcome in outcomes:
        predictions = outcome.metrics.get("predictions")
        if not isinstance(predictions, Mapping):
            continue
        row = rows.setdefault(
            outcome.trial.config_id, {"trials": 0, **dict.fromkeys(COUNTS, 0), "cost": 0.0}
        )
        row["trials"] += 1
        for variant in predictions.values():
            if isinstance(variant, Mapping):
                _add(row, variant)
    if not rows:
        return None
    total: dict[str, Any] = {key: sum(r[key] for r in rows.values()) for key in ("trials", *COUNTS)}
    total["cost"] = sum(r["cost"] for r in rows.values())
    budget = experiment.budget.model_dump(exclude_none=True) if experiment.budget else None
    return {"configurations": rows, "total": total, "budget": budget}
