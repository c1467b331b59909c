"""Bad data gets a clear message or NaN with a reason; the bench stage never crashes with a traceback."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from crucible_dagster import Experiment, bench, run


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: bench.ttest([], [1, 2]), "x: needs at least 2 observation(s), got 0"),
        (lambda: bench.ttest([1.0], [1, 2]), "x: needs at least 2 observation(s), got 1"),
        (lambda: bench.ttest([1, float("nan"), 3], [1, 2]), "x: 1 value(s) are NaN or infinite"),
        (lambda: bench.ttest([1, float("inf")], [1, 2]), "NaN or infinite"),
        (
            lambda: bench.ttest([1, "a", 3], [1, 2]),
            "x: expected numbers, got non-numeric value 'a'",
        ),
        (lambda: bench.ttest("12", [1, 2]), "expected a list of numbers, got a string"),
        (
            lambda: bench.paired_ttest([1, 2, 3], [1, 2]),
            "paired tests need equal lengths, got 3 and 2",
        ),
        (lambda: bench.wilcoxon([1, 2, 3], [1, 2]), "paired tests need equal lengths"),
        (lambda: bench.anova([[1, 2, 3]]), "needs at least 2 groups, got 1"),
        (lambda: bench.shapiro([1, 2]), "needs at least 3 observation(s)"),
        (lambda: bench.cv_5x2([[1, 2]], [[1, 2]]), "5 replications x 2 folds"),
        (lambda: bench.bootstrap([1, 2, 3], "mode"), "unknown statistic 'mode'"),
        (lambda: bench.mcnemar(-1, 2), "non-negative discordant counts"),
    ],
)
def test_clear_errors(call: Any, message: str) -> None:
    with pytest.raises(bench.BenchDataError, match=None) as err:
        call()
    assert message in str(err.value)


@pytest.mark.parametrize(
    "result",
    [
        bench.ttest([1, 1, 1], [2, 2, 2]),
        bench.ttest([1, 1, 1], [1, 1, 1], equal_var=True),
        bench.paired_ttest([1, 2, 3], [2, 3, 4]),
        bench.wilcoxon([1, 2, 3], [1, 2, 3]),
        bench.kruskal_wallis([[1, 1], [1, 1]]),
        bench.mann_whitney([2, 2, 2], [2, 2]),
        bench.shapiro([5, 5, 5, 5]),
        bench.anova([[1, 1], [2, 2]]),
        bench.welch_anova([[1, 1, 1], [2, 3, 4]]),
        bench.mcnemar(0, 0),
        bench.corrected_resampled_ttest([0.01, 0.01, 0.01], n_train=90, n_test=10),
        bench.bootstrap([3, 3, 3, 3], n_resamples=200, seed=1),
    ],
    ids=lambda r: r.test,
)
def test_undefined_results_are_nan_with_a_reason(result: bench.TestResult) -> None:
    assert math.isnan(result.p_value)
    assert result.reason


def _bench_run(assigns: dict[str, Any], **options: Any) -> Any:
    experiment = Experiment.model_validate(
        {"id": "b", "pipeline": [{"name": "bench", "options": options}]}
    )
    return run(experiment, assigns=assigns, write_run_dir=False)


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame(
            {"group": ["a", "a", "b"], "value": [1.0, 2.0, 3.0]}
        ),  # single observation in b
        pd.DataFrame({"group": ["a", "a", "b", "b"], "value": [1.0, 1.0, 1.0, 1.0]}),  # constant
        pd.DataFrame(
            {"group": ["a", "a", "b", "b"], "value": [1.0, float("nan"), 2.0, 3.0]}
        ),  # NaN
        pd.DataFrame({"group": ["a", "a", "b", "b"], "value": [1.0, "x", 2.0, 3.0]}),  # non-numeric
        pd.DataFrame(
            {
                "group": ["a", "a", "a", "b", "b"],
                "value": [1.0, 2.0, 3.0, 2.0, 3.0],
                "block": [0, 1, 2, 0, 1],
            }
        ),  # unequal pairs
        pd.DataFrame({"group": [], "value": []}),  # empty
        pd.DataFrame({"grp": ["a"], "val": [1.0]}),  # wrong columns
    ],
)
def test_bench_stage_survives_bad_data(frame: pd.DataFrame) -> None:
    result = _bench_run({"scores": frame})
    assert result.ok, result.failure
    out = result.context.metrics["bench"]
    if out.get("no_data"):
        assert out["reason"]
        return
    for row in out["comparisons"]:
        assert row["p_value"] is None or 0 <= row["p_value"] <= 1
        if row["p_value"] is None:
            assert row["reason"], row


def test_bench_stage_rejects_unknown_test_option() -> None:
    result = _bench_run({}, tests=["magic"])
    assert result.failure is not None and result.failure.reason == "invalid_options"
    assert "expected one of: ttest" in result.failure.message
