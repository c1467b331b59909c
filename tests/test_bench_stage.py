"""The bench stage: data sources, designs, control comparisons, decision record; scenario 13/14 adapted."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from crucible_dagster import Experiment, run
from crucible_dagster.experiment.loading import load_experiment
from tests.conftest import ROOT

BASELINE = [0.71, 0.69, 0.73, 0.72, 0.70, 0.68, 0.74, 0.69]
TREATMENT = [0.78, 0.76, 0.81, 0.79, 0.77, 0.75, 0.80, 0.78]


def bench_run(
    options: dict[str, Any],
    *,
    metrics: dict[str, Any] | None = None,
    assigns: dict[str, Any] | None = None,
    outputs: list[Any] | None = None,
) -> Any:
    pipeline: list[dict[str, Any]] = []
    if metrics:
        pipeline.append(
            {
                "name": "seed",
                "module": "crucible_dagster.contrib.examples:SeedMetrics",
                "options": {"metrics": metrics},
            }
        )
    pipeline.append({"name": "bench", "options": options})
    experiment = Experiment.model_validate({"id": "b", "seed": 3, "pipeline": pipeline})
    result = run(experiment, assigns=assigns, write_run_dir=False)
    assert result.ok, result.failure
    if outputs is not None:
        raise AssertionError("use assigns for outputs")
    return result.context


def test_scenario_13_two_groups_student_t() -> None:
    ctx = bench_run(
        {"data_source": "metrics", "tests": ["ttest"], "alpha": 0.05},
        metrics={"baseline": BASELINE, "treatment": TREATMENT},
    )
    out = ctx.metrics["bench"]
    assert out["groups"] == ["baseline", "treatment"]
    (row,) = out["comparisons"]
    assert (row["group_a"], row["group_b"], row["n_a"], row["n_b"]) == (
        "baseline",
        "treatment",
        8,
        8,
    )
    assert math.isclose(
        row["statistic"], -7.0335, abs_tol=1e-4
    )  # Welch and Student agree here (equal n)
    assert (
        math.isclose(row["effect_size"], -3.5168, abs_tol=1e-4)
        and row["effect_size_name"] == "cohens_d"
    )
    assert row["p_value"] < 1e-5 and row["significant"]
    assert math.isclose(row["ci_low"], -0.0946, abs_tol=1e-3) and math.isclose(
        row["ci_high"], -0.0504, abs_tol=1e-3
    )
    assert isinstance(ctx.assigns["bench_comparisons"], pd.DataFrame)


def test_scenario_14_shapes() -> None:
    ctx = bench_run(
        {"data_source": "metrics", "data_key": "runs", "tests": ["anova"]},
        metrics={"runs": {"g1": [0.7, 0.72], "g2": [0.8, 0.82], "g3": [0.6, 0.62]}},
    )
    (omnibus,) = ctx.metrics["bench"]["omnibus"]
    assert math.isclose(omnibus["statistic"], 100.0) and math.isclose(
        omnibus["p_value"], 0.0018, abs_tol=1e-4
    )
    single = bench_run(
        {"data_source": "metrics", "data_key": "runs"}, metrics={"runs": {"only": [0.8, 0.85]}}
    )
    assert (
        single.metrics["bench"]["no_data"] and "only one group" in single.metrics["bench"]["reason"]
    )
    empty = bench_run({"data_source": "outputs"})
    assert empty.metrics["bench"]["no_data"]


def test_paired_design_from_blocks_and_auto_selection_records_reasons() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(0.8, 0.05, 12)
    frame = pd.DataFrame(
        {
            "group": ["a"] * 12 + ["b"] * 12,
            "value": np.r_[base, base + 0.03 + rng.normal(0, 0.01, 12)],
            "block": list(range(12)) * 2,
        }
    )
    ctx = bench_run({}, assigns={"scores": frame})
    out = ctx.metrics["bench"]
    assert out["design"] == "paired"
    assert out["comparisons"][0]["test"] in ("paired_ttest", "wilcoxon")
    assert any("Shapiro-Wilk" in d["reason"] for d in out["decisions"])
    assert any(e.type == "decision_made" for e in ctx.trace.events)


def test_control_comparisons_and_correction() -> None:
    groups = {
        "base": [1.0, 1.2, 0.9, 1.1, 1.0, 1.05],
        "x": [1.5, 1.6, 1.4, 1.7, 1.55, 1.45],
        "y": [1.0, 1.1, 0.95, 1.05, 1.0, 1.1],
    }
    ctx = bench_run(
        {
            "data_source": "metrics",
            "data_key": "g",
            "control": "base",
            "tests": ["ttest"],
            "correction": "bonferroni",
        },
        metrics={"g": groups},
    )
    rows = ctx.metrics["bench"]["comparisons"]
    assert [(r["group_a"], r["group_b"]) for r in rows] == [("x", "base"), ("y", "base")]
    for row in rows:
        assert math.isclose(row["p_adjusted"], min(1.0, 2 * row["p_value"]))
    assert rows[0]["estimate"] > 0


def test_three_independent_groups_pick_an_omnibus_test() -> None:
    rng = np.random.default_rng(1)
    groups = {
        name: rng.normal(mu, 1.0, 20).tolist() for name, mu in (("a", 0), ("b", 0.5), ("c", 1.5))
    }
    out = bench_run({"data_source": "metrics", "data_key": "g"}, metrics={"g": groups}).metrics[
        "bench"
    ]
    assert out["omnibus"][0]["test"] in ("anova", "welch_anova", "kruskal_wallis")
    assert len(out["comparisons"]) == 3
    assert out["decisions"][0]["decision"].startswith(("a:", "omnibus"))


@pytest.mark.slow
def test_bench_optional_demo_matches_the_reference_example() -> None:
    result = run(
        load_experiment(ROOT / "experiments" / "bench_optional_demo.yaml"), write_run_dir=False
    )
    assert result.ok, result.failure
    rows = {r["test"]: r for r in result.context.metrics["bench"]["comparisons"]}
    assert math.isclose(rows["ttest"]["statistic"], 7.0335, abs_tol=1e-4)
    assert rows["bootstrap"]["ci_low"] > 0  # treatment - baseline, seeded bootstrap
    again = run(
        load_experiment(ROOT / "experiments" / "bench_optional_demo.yaml"), write_run_dir=False
    )
    assert (
        again.context.metrics["bench"]["comparisons"]
        == result.context.metrics["bench"]["comparisons"]
    )


@pytest.mark.slow
def test_classifier_demo_uses_the_corrected_resampled_t() -> None:
    result = run(
        load_experiment(ROOT / "experiments" / "classifier_comparison.yaml"), write_run_dir=False
    )
    assert result.ok, result.failure
    out = result.context.metrics["bench"]
    assert out["design"] == "blocked" and out["omnibus"][0]["test"] == "friedman"
    tests = [r["test"] for r in out["comparisons"]]
    assert (
        tests.count("corrected_resampled_ttest") == 3
        and tests.count("paired_ttest (naive, for reference)") == 3
    )
    for corrected, naive in zip(out["comparisons"][::2], out["comparisons"][1::2], strict=True):
        assert abs(corrected["statistic"]) < abs(
            naive["statistic"]
        )  # the correction widens the interval
