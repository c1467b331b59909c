"""Live: a scheduled experiment's run requests submitted to dagster-webserver and run by
dagster-daemon, on SQLite and on PostgreSQL; the regression gate's check evaluations and the
history read back from the instance (issue 13)."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from crucible_dagster.dagster_plugin import definitions_from_folder
from crucible_dagster.dagster_plugin.accept_job import ACCEPT_JOB
from crucible_dagster.dagster_plugin.history_source import dagster_runs
from crucible_dagster.run_history import list_runs
from tests.conftest import ROOT
from tests.integration.cdp import browser_path, headless_page
from tests.integration.test_live_webserver import Stack, live_dagster_at
from tests.services import postgres_db, postgres_home

pytestmark = pytest.mark.live
__all__ = ["postgres_db"]
FOLDER = ROOT / "tests" / "data" / "scheduled"


def _schedule_request(tick: datetime) -> dg.RunRequest:
    """What the daemon would submit at ``tick``: the schedule's own run request."""
    defs = definitions_from_folder(FOLDER)
    schedule = defs.resolve_schedule_def("gated_live_schedule")
    context = dg.build_schedule_context(scheduled_execution_time=tick)
    (request,) = schedule.evaluate_tick(context).run_requests or []
    return request


def _wait(client: DagsterGraphQLClient, run_id: str) -> str:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            status = client.get_run_status(run_id).value
        except DagsterGraphQLClientError:
            status = "STARTING"
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return str(status)
        time.sleep(0.25)
    raise AssertionError(f"run {run_id} did not finish")


def _submit(client: DagsterGraphQLClient, job: str, **kwargs: Any) -> str:
    deadline = time.monotonic() + 120
    while True:  # the webserver answers before its code location has loaded
        try:
            return client.submit_job_execution(job, **kwargs)
        except DagsterGraphQLClientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def _tick(client: DagsterGraphQLClient, day: int) -> str:
    request = _schedule_request(datetime(2026, 12, day, 3, 0, tzinfo=timezone.utc))
    tags = {**request.tags, "dagster/schedule_name": "gated_live_schedule"}
    return _submit(client, "gated_live", run_config=request.run_config, tags=tags)


def _scenario(live: Stack, workdir: Path) -> list[tuple[Any, ...]]:
    client = live.client
    first = _tick(client, 1)
    assert _wait(client, first) == "SUCCESS"
    accept = _submit(
        client,
        ACCEPT_JOB,
        run_config={
            "ops": {"accept_baseline": {"config": {"experiment_id": "gated_live", "run_id": first}}}
        },
    )
    assert _wait(client, accept) == "SUCCESS"
    (workdir / "shift.txt").write_text("-0.03")  # the data degrade before the next tick
    second = _tick(client, 2)
    assert _wait(client, second) == "FAILURE"
    (workdir / "shift.txt").unlink()
    third = _tick(client, 3)
    assert _wait(client, third) == "SUCCESS"
    with live.instance() as instance:
        run = instance.get_run_by_id(second)
        assert run is not None and run.tags.get("dagster/schedule_name") == "gated_live_schedule"
        key = dg.AssetCheckKey(dg.AssetKey(["crucible", "gated_live", "summary"]), "no_regression")
        executions = {
            e.run_id: e.event.dagster_event.event_specific_data
            for e in instance.event_log_storage.get_asset_check_execution_history(key, limit=10)
            if e.event is not None and e.event.dagster_event is not None
        }
        assert [executions[r].passed for r in (first, second, third)] == [True, False, True]
        assert executions[second].metadata["baseline_run_id"].value == first
        # the scheduled runs share their noise, so the degraded one differs by the shift on
        # every unit: decided without a test, and said so
        assert executions[second].metadata["estimate"].value == pytest.approx(-0.03)
        assert "every one of 20 units" in executions[second].metadata["detail"].value
        rows = list_runs("gated_live", sources=[lambda e: dagster_runs(e, instance)])
    assert [r.run_id for r in rows] == [first, second, third]
    return [(r.status, r.dagster_status, r.accepted, r.recorded_in) for r in rows]


EXPECTED = [
    ("completed", "success", True, "both"),
    ("failed", "failure", False, "both"),
    ("completed", "success", False, "both"),
]


def test_scheduled_runs_and_the_gate_on_sqlite(tmp_path: Path, artifacts_dir: Path) -> None:
    env = {"CRUCIBLE_EXPERIMENTS_DIR": str(FOLDER), "CRUCIBLE_TEST_WORKDIR": str(tmp_path)}
    with live_dagster_at(tmp_path, artifacts_dir, ROOT / "dagster.yaml", **env) as live:
        assert _scenario(live, tmp_path) == EXPECTED
        path = browser_path()
        if path is None and os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium package")
        if path is not None:  # the gate's verdict where runs are listed, as a user sees it
            with live.instance() as instance:
                runs = instance.get_runs(dg.RunsFilter(job_name="gated_live"))
                verdicts = {run.run_id[:8]: run.tags.get("crucible/gate", "") for run in runs}
            assert sorted(verdicts.values()) == ["clean", "no_baseline", "regressed"]
            (regressed,) = [short for short, verdict in verdicts.items() if verdict == "regressed"]
            with headless_page(path) as page:
                page.goto(f"{live.base}/runs?q[]=tag:crucible/gate=regressed")
                text = page.wait_for_text(regressed)  # the filtered list: that run's row
                page.screenshot(tmp_path / "runs_filtered_regressed.png")
                others = [short for short in verdicts if short != regressed]
                assert not any(short in text for short in others), text[:2000]
                assert "crucible/gate: regressed" in text  # the row's tag pill


@pytest.mark.postgres
def test_scheduled_runs_and_the_gate_on_postgres(
    postgres_db: str, tmp_path: Path, artifacts_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    template = postgres_home(postgres_db, tmp_path / "template", monkeypatch) / "dagster.yaml"
    env = {"CRUCIBLE_EXPERIMENTS_DIR": str(FOLDER), "CRUCIBLE_TEST_WORKDIR": str(tmp_path)}
    with live_dagster_at(tmp_path, artifacts_dir, template, **env) as live:
        assert _scenario(live, tmp_path) == EXPECTED  # the same rows as on SQLite
