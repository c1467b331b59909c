"""Monitoring under Dagster (issue 29): each limit of ``reliability.monitoring`` is an asset
check of the experiment's report, failing with the evidence when the recent runs miss it."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from crucible_dagster.contrib.llm_server import llm_server
from crucible_dagster.dagster_plugin import build_job
from tests.dagster_helpers import ephemeral_instance
from tests.test_telemetry import chat_experiment

pytestmark = pytest.mark.integration


def test_each_limit_is_a_check_of_the_report_with_its_evidence(artifacts_dir: Path) -> None:
    with llm_server() as (url, server), ephemeral_instance() as instance:
        server.fail_next(2, status=500)
        experiment = chat_experiment(
            "watched",
            url,
            count=5,
            options={"max_retries": 0, "concurrency": 1},
            stages=({"name": "monitor"}, {"name": "report"}),
            reliability={"monitoring": {"error_rate": 0.1, "latency_p95_ms": 60000}},
            outputs=[{"name": "summary", "formats": ["json"]}],
        )
        result = build_job(experiment).execute_in_process(instance=instance, raise_on_error=False)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(checks) == {"monitoring_error_rate", "monitoring_latency_p95_ms"}
    failed, passed = checks["monitoring_error_rate"], checks["monitoring_latency_p95_ms"]
    assert failed.passed is False and passed.passed is True
    assert failed.asset_key == dg.AssetKey(["crucible", "watched", "summary"])
    assert failed.severity == dg.AssetCheckSeverity.ERROR
    detail = failed.metadata["detail"].value
    assert detail == f"monitoring.error_rate = 0.4 misses <= 0.1 over 5 requests of {result.run_id}"
