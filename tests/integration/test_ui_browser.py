"""The asset side in a real browser (issue 12): headless Chromium against dagster-webserver and
dagster-daemon. Open the report asset, click Materialize, wait for the run, then see the dataset
upstream in the lineage view and the comparison as a table. Screenshots land in the test's
temporary folder."""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from tests.conftest import ROOT
from tests.integration.cdp import headless_page
from tests.integration.test_live_webserver import live_dagster_at

pytestmark = [pytest.mark.live, pytest.mark.slow]
REPORT = dg.AssetKey(["crucible", "classifier_comparison", "comparison"])


def what_the_runs_did(instance: dg.DagsterInstance) -> list[tuple[str, str, list[str]]]:
    """Each run's job, status and failure messages, so a timeout says why."""
    return [
        (
            run.job_name,
            run.status.value,
            [
                str(entry.message)[:500]
                for entry in instance.all_logs(run.run_id)
                if entry.dagster_event is not None and entry.dagster_event.is_failure
            ],
        )
        for run in instance.get_runs()
    ]


def test_materialize_from_the_catalog_then_lineage_and_table(
    browser: str, tmp_path: Path, artifacts_dir: Path
) -> None:
    with live_dagster_at(tmp_path, artifacts_dir, ROOT / "dagster.yaml") as live:
        _, port, home = live
        base = f"http://127.0.0.1:{port}"
        with headless_page(browser) as page:
            page.goto(f"{base}/assets/crucible/classifier_comparison/comparison")
            page.wait_for_text("Materialize")
            page.screenshot(tmp_path / "1_asset_before.png")
            deadline = time.monotonic() + 60
            while not page.click_button("Materialize"):  # enabled once the location loaded
                assert time.monotonic() < deadline, page.text()[:3000]
                time.sleep(1)
            # the dataset upstream is materializable too and not yet materialized: Dagster asks
            # "Are you sure?" before it launches the report alone, as a user would see it
            deadline = time.monotonic() + 10
            while not page.click_button("Confirm") and time.monotonic() < deadline:
                time.sleep(0.5)
            with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
                deadline = time.monotonic() + 120
                while instance.get_latest_materialization_event(REPORT) is None:
                    assert time.monotonic() < deadline, (
                        "no materialization after Materialize; runs: "
                        f"{what_the_runs_did(instance)}; page: {page.text()[:2000]}"
                    )
                    time.sleep(1)
                event = instance.get_latest_materialization_event(REPORT)
                assert event is not None
                deadline = time.monotonic() + 60
                while True:
                    run = instance.get_run_by_id(event.run_id)
                    assert run is not None and time.monotonic() < deadline
                    if run.is_finished:
                        break
                    time.sleep(0.5)
                assert run.status == dg.DagsterRunStatus.SUCCESS
            page.goto(f"{base}/assets/crucible/classifier_comparison/comparison")
            text = page.wait_for_text("ci_high")  # the comparison renders as a table
            assert "effect_size" in text
            page.screenshot(tmp_path / "2_asset_materialized.png")
            page.goto(f"{base}/assets/crucible/classifier_comparison/comparison?view=lineage")
            page.wait_for_text("breast_cancer")  # the dataset upstream of the report
            page.screenshot(tmp_path / "3_lineage.png")
    assert all(
        (tmp_path / name).stat().st_size > 10_000
        for name in ("1_asset_before.png", "2_asset_materialized.png", "3_lineage.png")
    )
