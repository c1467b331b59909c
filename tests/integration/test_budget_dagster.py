"""The budget under Dagster: the job runs every stage and succeeds, the run is tagged
``crucible/status=budget_exhausted``, the predict op's output says what was spent, and the run's
record ends ``budget_exhausted`` with every answer kept (as ``crucible run`` does)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg

from crucible_dagster.contrib.llm_server import llm_server
from crucible_dagster.dagster_plugin import build_job
from crucible_dagster.dagster_plugin.ops import STATUS_TAG
from tests.dagster_helpers import ephemeral_instance
from tests.test_budget import experiment


def test_a_budget_stops_the_calls_and_dagster_shows_it(artifacts_dir: Path) -> None:
    with llm_server() as (url, server), ephemeral_instance() as instance:
        result = build_job(experiment(url, {"max_requests": 4})).execute_in_process(
            instance=instance
        )
        assert result.success  # every stage ran: the answers had are scored and kept
        assert sum(server.requests.values()) == 4
        run = instance.get_run_by_id(result.run_id)
        assert run is not None and run.tags[STATUS_TAG] == "budget_exhausted"
        outputs = [
            e
            for e in result.all_events
            if e.event_type == dg.DagsterEventType.STEP_OUTPUT and e.step_key == "predict"
        ]
        budget: Any = outputs[0].step_output_data.metadata["crucible/budget"].value
        assert budget["spent"]["requests"] == 4
        table = result.output_for_node("score").assigns["predictions"]
        assert table["prediction"].notna().sum() == 4
    manifest = json.loads(
        (artifacts_dir / "cost_demo" / result.run_id / "manifest.json").read_text()
    )
    assert manifest["status"] == "budget_exhausted"
    assert manifest["metrics"]["budget"]["exhausted"] is True


def test_a_run_within_its_budget_is_not_tagged(artifacts_dir: Path) -> None:
    with llm_server() as (url, _server), ephemeral_instance() as instance:
        result = build_job(experiment(url, {"max_requests": 40})).execute_in_process(
            instance=instance
        )
        run = instance.get_run_by_id(result.run_id)
        assert result.success and run is not None and STATUS_TAG not in run.tags


def test_a_sweep_job_shares_one_budget_and_is_tagged(artifacts_dir: Path) -> None:
    from crucible_dagster.run_history.records import read_run

    with llm_server() as (url, server), ephemeral_instance() as instance:
        data = experiment(url, {"max_requests": 15}, seeds=[1, 2, 3])
        result = build_job(data).execute_in_process(instance=instance)
        assert result.success
        assert sum(server.requests.values()) == 15
        run = instance.get_run_by_id(result.run_id)
        assert run is not None and run.tags[STATUS_TAG] == "budget_exhausted"
    sweep = read_run(artifacts_dir / "cost_demo" / result.run_id)
    assert sweep.manifest.status == "budget_exhausted"
