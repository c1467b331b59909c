"""The original's examples, ported: core pipeline and trace demos."""

from __future__ import annotations

import json

from crucible_dagster import run
from crucible_dagster.experiment.loading import load_experiment
from tests.conftest import ROOT


def test_core_pipeline_demo(artifacts_dir) -> None:
    result = run(load_experiment(ROOT / "experiments/core_pipeline_demo.yaml"), run_id="demo")
    assert result.ok, result.failure
    metrics = result.context.metrics
    assert metrics["validation"] == {"status": "passed"}
    assert metrics["examples_loaded"] == 3
    assert metrics["data_checks"] == {
        "total": 3,
        "missing_required": 0,
        "required_fields": ["input", "output"],
    }
    assert metrics["guardrails"] == {"total": 3, "violations": 0}
    assert result.context.completed_stages() == [
        "validate",
        "seed_examples",
        "data_checks",
        "guardrails",
        "report",
    ]
    run_dir = artifacts_dir / "core_pipeline_demo" / "demo"
    assert (run_dir / "summary.md").read_text().startswith("# Experiment core_pipeline_demo")
    assert json.loads((run_dir / "summary.json").read_text())["metrics"]["examples_loaded"] == 3


def test_trace_demo() -> None:
    result = run(load_experiment(ROOT / "experiments/trace_demo.yaml"), write_run_dir=False)
    assert result.ok
    assert result.context.metrics["decision"] == {"choice": "safe_path", "confidence": 0.72}
    decisions = result.context.trace.events_of_type("decision_made")
    assert len(decisions) == 1
    assert decisions[0].decision == "Select fallback strategy"
    assert (
        decisions[0].alternatives == ("fast_path", "safe_path") and decisions[0].confidence == 0.72
    )
    assert "decision_made" in (result.context.export_trace("mermaid") or "")
