"""Statistical edges say what they cannot say (issue 22, section 9).

Fairness on no samples, one group, a group of one, missing labels or groups, a single class,
equal values; an interval that would exclude its own estimate; and a paired decision whose
named test must be the test its reason describes. Each result is checked for the property:
undefined values are ``None`` beside a reason (strict JSON, never NaN), dropped rows are
counted, and no interval leaves out its estimate.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from crucible_dagster import Experiment
from crucible_dagster.bench.compare import compare_groups
from crucible_dagster.bench.settings import ComparisonSettings
from crucible_dagster.reliability.fairness import FairnessResult, fairness_report
from crucible_dagster.runtime.context import Context
from crucible_dagster.stages.fairness import FairnessOptions, FairnessStage
from crucible_dagster.stages.per_sample import TABLE_KEY


def report(pred: list[Any], ref: list[Any], group: list[Any], **kw: Any) -> dict[str, Any]:
    results = fairness_report(pred, ref, group, n_resamples=200, **kw)
    return {r.metric: r for r in results}


def strict(result: FairnessResult) -> dict[str, Any]:
    """The record as JSON holds it: NaN is refused, so nothing undefined can pass as a number."""
    out: dict[str, Any] = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    return out


def assert_undefined(result: FairnessResult, *words: str) -> None:
    record = strict(result)
    assert record["gap"] is None and record["ci_low"] is None and record["violated"] is None
    assert record["reason"] and all(w in record["reason"] for w in words), record["reason"]


@pytest.mark.parametrize("n", [0, 1])
def test_no_samples_or_one_sample_has_no_gap(n: int) -> None:
    for result in report([1] * n, [1] * n, ["a"] * n).values():
        assert_undefined(result, "no samples" if n == 0 else "one group ('a')")
        assert strict(result)["n"] == n


def test_one_group_is_undefined_with_its_name() -> None:
    for result in report([1, 0, 1, 0], [1, 1, 0, 0], ["only"] * 4).values():
        assert_undefined(result, "one group ('only')", "at least two")


GROUP_OF_ONE = (["a", "a", "b"], ["a", "a", "b", "b"])


@pytest.mark.parametrize("group", GROUP_OF_ONE, ids=["b_has_one", "b_has_two"])
def test_a_group_of_one_has_a_gap_but_no_interval(group: list[str]) -> None:
    # with one sample, b's rate is the same in every resample: no interval would be honest
    pred, ref = [1, 0, 1, 1][: len(group)], [1, 1, 0, 0][: len(group)]
    parity = strict(report(pred, ref, group)["demographic_parity"])
    assert parity["gap"] == pytest.approx(0.5)
    if len(group) == 3:
        assert parity["ci_low"] is None and "group 'b' has one sample" in parity["ci_reason"]
    else:
        assert parity["ci_low"] is not None and parity["ci_reason"] is None


def test_missing_predictions_references_and_groups_are_dropped_and_counted() -> None:
    nan = float("nan")
    pred = [1, 0, 1, 0, 1, 0, nan, 1, None, 1, 0]
    ref = [1, 1, 0, 0, 1, 0, 1, pd.NA, 1, 1, 0]
    group = ["a", "a", "a", "b", "b", "b", "a", "b", "a", nan, None]
    dirty = report(pred, ref, group)
    clean = report(pred[:6], ref[:6], group[:6])
    for metric, result in dirty.items():
        record = strict(result)
        assert record["dropped"] == {"prediction": 2, "reference": 1, "group": 2, "rows": 5}
        assert record["n"] == 6 and "5 rows dropped" in " ".join(record["flags"])
        assert sorted(record["by_group"]) == ["a", "b"]  # no "nan" or "None" group
        assert record["gap"] == strict(clean[metric])["gap"]


def test_inf_is_a_label_not_a_missing_value() -> None:
    inf = float("inf")
    result = strict(
        report([inf, 1, 1, 0], [1, 1, 0, inf], ["a", "a", "b", "b"])["demographic_parity"]
    )
    assert result["n"] == 4 and result["dropped"]["rows"] == 0
    assert result["gap"] == pytest.approx(0.0)  # a: 1 of 2 positive, b: 1 of 2


def test_a_single_reference_class_leaves_opportunity_undefined() -> None:
    metrics = report([1, 0, 1, 1], [0, 0, 0, 0], ["a", "a", "b", "b"])
    assert_undefined(metrics["equal_opportunity"], "no samples with reference = positive")
    assert_undefined(metrics["equalized_odds"], "true_positive_rate")
    assert strict(metrics["demographic_parity"])["gap"] == pytest.approx(0.5)


def test_all_predictions_equal() -> None:
    metrics = report([0] * 8, [1, 0] * 4, ["a"] * 4 + ["b"] * 4)
    parity = strict(metrics["demographic_parity"])
    assert (parity["gap"], parity["ci_low"], parity["ci_high"]) == (0.0, 0.0, 0.0)
    assert_undefined(metrics["predictive_parity"], "no samples predicted positive")


def test_a_group_without_the_rate_is_left_out_with_a_flag() -> None:
    pred = [1, 0, 1, 0, 1, 1, 0, 0, 1]
    ref = [1, 1, 1, 1, 1, 0, 0, 0, 0]
    group = ["a", "a", "b", "b", "b", "c", "c", "c", "c"]
    opportunity = strict(report(pred, ref, group)["equal_opportunity"])
    assert opportunity["gap"] == pytest.approx(2 / 3 - 1 / 2)  # over a and b only
    assert any("group 'c' left out" in f for f in opportunity["flags"]), opportunity["flags"]


def test_no_interval_excludes_its_estimate() -> None:
    # equal rates in two large groups: the estimate is 0, yet almost no resample's
    # largest-minus-smallest gap is 0, so the plain percentile interval started above it
    pred, ref = [1, 0] * 1000, [1, 1, 0, 0] * 500
    group = ["a"] * 1000 + ["b"] * 1000
    parity = strict(report(pred, ref, group, metrics=["demographic_parity"])["demographic_parity"])
    assert parity["gap"] == 0.0
    assert parity["ci_low"] <= parity["gap"] <= parity["ci_high"]
    assert any("did not hold the estimate" in f for f in parity["flags"])


@pytest.mark.parametrize("seed", range(4))
def test_intervals_hold_their_estimates_on_small_random_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 12
    pred, ref = rng.integers(0, 2, n).tolist(), rng.integers(0, 2, n).tolist()
    group = rng.choice(["a", "b", "c"], n).tolist()
    for result in report(pred, ref, group, seed=seed).values():
        record = strict(result)
        if record["ci_low"] is not None:
            assert record["ci_low"] <= record["gap"] <= record["ci_high"], record
        elif record["gap"] is not None:
            assert record["ci_reason"], record


def test_the_stage_lists_what_it_cannot_say_in_strict_json(tmp_path: Any) -> None:
    experiment = Experiment.model_validate(
        {
            "id": "fair",
            "pipeline": [{"name": "fairness"}],
            "reliability": {"fairness": {"enabled": True, "group_by": "g"}},
        }
    )
    table = pd.DataFrame(
        {
            "variant": ["m"] * 4,
            "sample_id": ["0", "1", "2", "3"],
            "prediction": [1, 0, 1, 0],
            "reference": [0, 0, 0, 0],
            "error": [None] * 4,
        }
    )
    features = pd.DataFrame({"g": ["a", "a", "b", float("nan")]}, index=["0", "1", "2", "3"])
    ctx = Context(
        experiment_id="fair",
        run_id="r",
        experiment=experiment,
        assigns={TABLE_KEY: table, "features": features},
        run_dir=str(tmp_path),
    )
    summary = FairnessStage().run(ctx, FairnessOptions(n_resamples=100)).metrics["fairness"]
    json.dumps(summary, allow_nan=False)
    assert "m: equal_opportunity undefined: fewer than two groups" in " | ".join(
        summary["undefined"]
    )
    parity = summary["variants"]["m"]["demographic_parity"]
    assert parity["dropped"]["group"] == 1 and parity["n"] == 3


PAIRED_CASES = [
    ("two_pairs", [1.0, 2.0], [0.5, 1.0]),
    ("constant_differences", [1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 2.0, 3.0]),
    ("normal_differences", [3.0, 1.0, 4.0, 1.0, 5.0, 9.0], [2.0, 7.0, 1.0, 8.0, 2.0, 8.0]),
    ("skewed_differences", [0.0] * 9 + [50.0] + [1.0] * 5, [0.0] * 15),
]
WORDS = {"paired_ttest": "paired t", "wilcoxon": "Wilcoxon"}


@pytest.mark.parametrize(
    ("x", "y"), [c[1:] for c in PAIRED_CASES], ids=[c[0] for c in PAIRED_CASES]
)
def test_a_paired_decision_names_the_test_its_reason_describes(
    x: list[float], y: list[float]
) -> None:
    comparison = compare_groups({"a": x, "b": y}, ComparisonSettings(design="paired"))
    [row] = comparison.rows
    [choice] = [d for d in comparison.decisions if d.decision.startswith("a vs b: ")]
    assert choice.decision == f"a vs b: {row.test}"
    assert WORDS[row.test] in choice.reason, choice.reason
    other = next(w for t, w in WORDS.items() if t != row.test)
    assert other not in choice.reason, choice.reason
    if row.test == "paired_ttest":
        assert "rank" not in choice.reason, choice.reason
    if math.isnan(row.p_value):
        assert row.reason, row
