"""The ensemble demo under `dagster job execute`, and the fairness demo finding its disparity."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from crucible_dagster.experiment.loading import load_experiment
from crucible_dagster.runtime.runner import run
from tests.conftest import ROOT
from tests.integration.test_dagster_cli import job_execute

pytestmark = [pytest.mark.slow]


def test_ensemble_demo_under_dagster_job_execute(tmp_path: Path, artifacts_dir: Path) -> None:
    job_execute("ensemble_demo", tmp_path, artifacts_dir)
    (run_dir,) = (artifacts_dir / "ensemble_demo").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    table = pd.read_parquet(run_dir / "predictions.parquet")
    assert set(table["variant"]) == {"logistic_regression", "random_forest", "knn", "ensemble"}
    assert (table.groupby("variant").size() == 569).all()
    # the majority of three 0/1 votes, recomputed here from the members' rows
    members = table[table["variant"] != "ensemble"].pivot(
        index="sample_id", columns="variant", values="prediction"
    )
    majority = (members.sum(axis=1) >= 2).astype(int)
    ensemble = table[table["variant"] == "ensemble"].set_index("sample_id")["prediction"]
    assert (ensemble.loc[majority.index].astype(int) == majority).all()
    metrics = manifest["metrics"]
    accuracy = {v: s["mean"] for v, s in metrics["score"]["variants"].items()}
    truth = table[table["variant"] == "ensemble"]
    assert accuracy["ensemble"] == pytest.approx((truth["prediction"] == truth["reference"]).mean())
    rows = metrics["bench"]["comparisons"]
    member_names = {"logistic_regression", "random_forest", "knn"}
    assert {r["group_a"] for r in rows if r["test"] == "mcnemar"} == member_names
    assert {r["group_a"] for r in rows if r["test"] == "bootstrap"} == member_names  # beside it
    assert all(r["group_b"] == "ensemble" for r in rows)
    report = (run_dir / "comparison.md").read_text()
    assert "vs ensemble: mcnemar" in report  # the decision record


def test_fairness_demo_finds_the_disparity_it_was_built_with(artifacts_dir: Path) -> None:
    result = run(load_experiment(ROOT / "experiments" / "fairness_demo.yaml"))
    assert result.status == "completed"
    fairness = result.context.metrics["fairness"]
    parity = fairness["variants"]["logistic_regression"]["demographic_parity"]
    rates = result.context.metrics["dataset"]["repaid_rate"]
    assert rates["group_0"] - rates["group_1"] > 0.15  # built in
    assert parity["violated"] and parity["ci_low"] > 0.1  # found, and not by chance
    assert fairness["violations"] == [
        f"logistic_regression: demographic_parity gap {parity['gap']:.3f} > 0.1"
    ]
    # the finding as a telemetry event: which metric, how many groups, no values (issue 27)
    from crucible_dagster.telemetry import read_events

    events, _ = read_events(Path(str(result.run_dir)) / "telemetry.jsonl")
    found = [(e.variant, e.finding, e.count) for e in events if e.event == "fairness_finding"]
    assert found == [("logistic_regression", "demographic_parity", len(parity["by_group"]))]
    strict = load_experiment(ROOT / "experiments" / "fairness_demo.yaml")
    assert strict.reliability is not None and strict.reliability.fairness is not None
    failing = strict.model_copy(
        update={
            "reliability": strict.reliability.model_copy(
                update={
                    "fairness": strict.reliability.fairness.model_copy(
                        update={"fail_on_violation": True}
                    )
                }
            )
        }
    )
    failed = run(failing)
    assert failed.status == "failed" and failed.failure is not None
    assert "demographic_parity gap" in str(failed.failure.message)
