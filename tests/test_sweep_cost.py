"""What a sweep spent, per configuration: summed from its trials' predict metrics (over seeds
and variants), shown in the sweep's reports beside the budget; none for a sweep that asked no
backend; a record read back with odd values counts them as nothing, never as a crash."""

from __future__ import annotations

from typing import Any

import pytest

from crucible_dagster import Experiment
from crucible_dagster.reports.cost_section import cost_html, cost_markdown, cost_rows
from crucible_dagster.sweeps.grid import Trial
from crucible_dagster.sweeps.running import TrialOutcome
from crucible_dagster.sweeps.spend import sweep_spend

EXPERIMENT = Experiment.model_validate(
    {
        "id": "spend",
        "parameters": {"prompt": ["a", "b"]},
        "budget": {"max_cost": 0.5, "max_requests": 100},
        "pipeline": [{"name": "predict"}],
    }
)


def outcome(config: str, seed: int, predictions: Any) -> TrialOutcome:
    trial = Trial(f"{config}__seed_{seed}", {"prompt": config}, seed, config=config)
    metrics = {"predictions": predictions} if predictions is not None else {"cv": {}}
    return TrialOutcome(trial, "completed", metrics)


def variant(samples: int, cached: int, cost: float, extra: int = 0) -> dict[str, Any]:
    return {
        "samples": samples,
        "cached": cached,
        "extra_requests": extra,
        "prompt_tokens": 10 * (samples - cached),
        "completion_tokens": 2 * (samples - cached),
        "cost": cost,
    }


def test_seeds_and_variants_add_up_per_configuration() -> None:
    outcomes = [
        outcome("a", 1, {"small": variant(10, 0, 0.01), "large": variant(10, 0, 0.1, extra=2)}),
        outcome("a", 2, {"small": variant(10, 10, 0.0), "large": variant(10, 10, 0.0)}),
        outcome("b", 1, {"small": variant(10, 3, 0.007)}),
    ]
    spend = sweep_spend(EXPERIMENT, outcomes)
    assert spend is not None
    assert spend["configurations"]["a"] == {
        "trials": 2,
        "requests": 22,  # 10 + 10 sent, 2 retries; the second seed all cached
        "cached": 20,
        "prompt_tokens": 200,
        "completion_tokens": 40,
        "cost": pytest.approx(0.11),
    }
    assert spend["configurations"]["b"]["requests"] == 7
    assert spend["total"]["requests"] == 29 and spend["total"]["trials"] == 3
    assert spend["total"]["cost"] == pytest.approx(0.117)
    assert spend["budget"] == {"max_cost": 0.5, "max_requests": 100}


def test_a_sweep_that_asked_no_backend_has_no_cost() -> None:
    assert sweep_spend(EXPERIMENT, [outcome("a", 1, None), outcome("b", 1, None)]) is None
    assert cost_markdown(None) == [] and cost_html(None) == ""


@pytest.mark.parametrize("odd", [True, -5, "12", float("nan"), float("inf"), None, [1], 10**30])
def test_odd_values_read_back_count_as_nothing(odd: Any) -> None:
    predictions = {"m": {k: odd for k in variant(1, 0, 0.0)}, "not a variant": odd}
    spend = sweep_spend(EXPERIMENT, [outcome("a", 1, predictions)])
    assert spend is not None
    row = spend["configurations"]["a"]
    assert row["cost"] == 0.0 and all(row[k] == 0 for k in ("requests", "cached", "prompt_tokens"))


def test_the_section_escapes_configuration_ids_in_both_formats() -> None:
    hostile = "<script>x</script>|*b*"
    spend = sweep_spend(EXPERIMENT, [outcome(hostile, 1, {"m": variant(4, 1, 0.25)})])
    assert spend is not None
    rows = cost_rows(spend)
    assert rows[0] == [hostile, 1, 3, 1, 30, 6, "0.25"] and rows[-1][0] == "total"
    markdown = "\n".join(cost_markdown(spend))
    assert "## Cost" in markdown and "<script>" not in markdown
    assert "Budget: max\\_cost 0.5, max\\_requests 100." in markdown
    html = cost_html(spend)
    assert "<script>x" not in html and "&lt;script&gt;x" in html
