"""Issue 26 in a real browser (headless Chromium against dagster-webserver and dagster-daemon),
one live server for the module: Materialize runs one step per stage and carries the experiment
tag (item 2), a check executed alone from the asset's Checks tab gives its result (item 1),
and a Launchpad run with ``seed: -5`` is refused before any stage with the located message
(item 4). Screenshots land in the module's temporary folder."""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from tests.conftest import ROOT
from tests.integration.cdp import Page, headless_page
from tests.integration.test_live_webserver import Stack, live_dagster_at

# one worker runs them all, on the one live server of the module
pytestmark = [pytest.mark.live, pytest.mark.slow, pytest.mark.xdist_group("ui_checks_launchpad")]

EXPERIMENT = {
    "id": "ui_checked",
    "description": "A report with one quality target, for the browser tests.",
    "pipeline": [
        {
            "name": "seed",
            "module": "crucible_dagster.contrib.examples:SeedMetrics",
            "options": {
                "metrics": {
                    "accuracy": 0.8,
                    "scores": {
                        "treatment": [0.82, 0.85, 0.84, 0.86, 0.83, 0.85],
                        "baseline": [0.70, 0.72, 0.71, 0.69, 0.73, 0.70],
                    },
                }
            },
        },
        {"name": "bench", "options": {"data_source": "metrics", "data_key": "scores"}},
        {"name": "report"},
    ],
    "outputs": [{"name": "summary", "formats": ["markdown"]}],
    "quality_targets": [{"name": "accuracy_floor", "metric": "accuracy", "op": ">=", "value": 0.7}],
}
BROKEN = "id: broken\npipeline:\n  - name: no_such_stage\n"
REPORT = dg.AssetKey(["crucible", "ui_checked", "summary"])
CHECK = dg.AssetCheckKey(REPORT, "accuracy_floor")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("ui_checks")
    experiments = root / "experiments"
    experiments.mkdir()
    (experiments / "ui_checked.yaml").write_text(yaml.safe_dump(EXPERIMENT))
    (experiments / "broken.yaml").write_text(BROKEN)
    artifacts = root / "artifacts"
    env = {"CRUCIBLE_EXPERIMENTS_DIR": str(experiments)}
    with live_dagster_at(root, artifacts, ROOT / "dagster.yaml", **env) as stack:
        yield stack


def shot(page: Page, path: Path) -> None:
    """A screenshot without Dagster's "Join the community" dialog over the page."""
    page.click_button("Skip")
    page.screenshot(path)


def click_when_ready(page: Page, *labels: str, timeout: float = 60) -> str:
    """Click the first enabled button of ``labels`` once the location has loaded."""
    deadline = time.monotonic() + timeout
    while True:
        for label in labels:
            if page.click_button(label):
                return label
        assert time.monotonic() < deadline, f"no button {labels}; page: {page.text()[:3000]}"
        time.sleep(1)


def wait_for_run(live: Stack, since: set[str], timeout: float = 120) -> dg.DagsterRun:
    """The one run launched after ``since`` was taken, once it has finished."""
    deadline = time.monotonic() + timeout
    with live.instance() as instance:
        while True:
            new = [r for r in instance.get_runs() if r.run_id not in since]
            if new and new[0].is_finished:
                return new[0]
            assert time.monotonic() < deadline, f"runs: {[(r.job_name, r.status) for r in new]}"
            time.sleep(0.25)


def run_ids(live: Stack) -> set[str]:
    with live.instance() as instance:
        return {r.run_id for r in instance.get_runs()}


@pytest.fixture(scope="module")
def materialized(browser: str, live: Stack) -> dg.DagsterRun:
    """The report materialized from its page's Materialize button, once for the module."""
    with headless_page(browser) as page:
        before = run_ids(live)
        page.goto(f"{live.base}/assets/crucible/ui_checked/summary")
        page.wait_for_text("Materialize")
        click_when_ready(page, "Materialize")
        made = wait_for_run(live, before)
    assert made.status == dg.DagsterRunStatus.SUCCESS
    return made


#: the steps of the report asset's graph: one per stage, as the job has, then its checks
STEPS = [f"ui_checked__stages.{step}" for step in ("seed", "bench", "report", "checks")]


def test_materialize_shows_a_step_per_stage_and_the_experiment_tag(
    browser: str, live: Stack, materialized: dg.DagsterRun
) -> None:
    """Item 2: the run Materialize launched lists the stages as the job's runs do (it was one
    step, crucible_reports_<hash>), and is found by its experiment's tag."""
    with headless_page(browser) as page:
        page.goto(f"{live.base}/runs/{materialized.run_id}")
        page.wait_for_text("Succeeded (4)")
        page.evaluate(  # the run's list of succeeded steps, opened
            "(() => { const e = [...document.querySelectorAll('*')].find(e =>"
            " e.children.length === 0 && e.innerText && e.innerText.trim() === 'Succeeded (4)');"
            " if (e) { e.click(); } })()"
        )
        text = page.wait_for_text(STEPS[-1])
        shot(page, live.logs / "0_materialize_run_steps.png")
        assert all(step in text for step in STEPS), text[:3000]
        assert "crucible_reports_" not in text
        click_when_ready(page, "View tags and config")
        text = page.wait_for_text("crucible/experiment")
        time.sleep(1)  # the dialog's fade-in, before a screenshot
        shot(page, live.logs / "0_materialize_run_tags.png")
        assert "ui_checked" in text.split("crucible/experiment", 1)[1][:100], text[:3000]
        page.goto(f"{live.base}/runs?q[]=tag:crucible/experiment=ui_checked")
        text = page.wait_for_text(materialized.run_id[:8])
        assert "crucible/experiment: ui_checked" in text
        shot(page, live.logs / "0_runs_by_experiment.png")
    with live.instance() as instance:
        events = instance.all_logs(materialized.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
    assert [e.step_key for e in events] == STEPS


def test_a_check_executed_alone_gives_its_result(
    browser: str, live: Stack, materialized: dg.DagsterRun
) -> None:
    made = materialized
    with headless_page(browser) as page:
        before = run_ids(live)
        page.goto(f"{live.base}/assets/crucible/ui_checked/summary?view=checks")
        page.wait_for_text("accuracy_floor")
        shot(page, live.logs / "1_checks_before.png")
        click_when_ready(page, "Execute", "Execute all")
        alone = wait_for_run(live, before)
        assert alone.status == dg.DagsterRunStatus.SUCCESS
        with live.instance() as instance:
            storage = instance.event_log_storage
            (latest, *_) = storage.get_asset_check_execution_history(CHECK, limit=1)
            assert latest.run_id == alone.run_id
            evaluation = latest.event.dagster_event.asset_check_evaluation_data
            assert evaluation.passed
            assert evaluation.metadata["crucible/run_id"].value == made.run_id
            # judged on the recorded run: no second materialization, no second run directory
            event = instance.get_latest_materialization_event(REPORT)
            assert event is not None and event.run_id == made.run_id
        assert [p.name for p in (live.artifacts / "ui_checked").iterdir()] == [made.run_id]
        page.goto(f"{live.base}/assets/crucible/ui_checked/summary?view=checks")
        text = page.wait_for_text("Passed")
        assert "Skipped" not in text, text[:2000]
        shot(page, live.logs / "2_check_executed_alone.png")

        # item 8: the asset's page says what the experiment is for, targets and comparisons
        # are tables of rounded figures, not JSON
        page.goto(f"{live.base}/assets/crucible/ui_checked/summary")
        page.wait_for_text("quality_targets")
        text = page.wait_for_text(str(EXPERIMENT["description"]))  # it renders apart
        shot(page, live.logs / "5_report_asset_tables.png")
        assert EXPERIMENT["description"] in text
        assert "accuracy = 0.8 meets >= 0.7" in text  # the targets table's detail column
        assert "p_adjusted" not in text  # one comparison: it would repeat p
        digits = [len(d) for d in re.findall(r"\b0\.(\d+)\b", text)]
        assert digits and max(digits) <= 6, text[:3000]


def test_a_negative_seed_in_the_launchpad_fails_before_any_stage(browser: str, live: Stack) -> None:
    config = yaml.safe_dump({"resources": {"crucible": {"config": {"seed": -5}}}})
    query = urllib.parse.urlencode({"config": config})
    with headless_page(browser) as page:
        before = run_ids(live)
        page.goto(f"{live.base}/locations/crucible/jobs/ui_checked/playground/setup?{query}")
        text = page.wait_for_text("seed")
        shot(page, live.logs / "3_launchpad_negative_seed.png")
        assert "-5" in text, text[:2000]
        click_when_ready(page, "Launch Run", "Launch run")
        refused = wait_for_run(live, before)
        assert refused.status == dg.DagsterRunStatus.FAILURE
        with live.instance() as instance:
            events = [e.dagster_event for e in instance.all_logs(refused.run_id)]
        succeeded = [e.step_key for e in events if e is not None and e.is_step_success]
        failures = [e for e in events if e is not None and e.is_step_failure]
        assert succeeded == []  # no stage ran
        assert [e.step_key for e in failures] == ["ui_checked__stages.seed"]
        message = failures[0].step_failure_data.error.message
        assert "resources.crucible.config.seed: expected an integer between 0 and" in message
        assert not (live.artifacts / "ui_checked" / refused.run_id).exists()
        page.goto(f"{live.base}/runs/{refused.run_id}")
        page.wait_for_text("resources.crucible.config.seed")
        shot(page, live.logs / "4_run_refused.png")


def test_an_invalid_file_fails_a_sensor_the_automation_page_shows(
    browser: str, live: Stack
) -> None:
    """Item 8: an invalid experiment file stands out: the sensor crucible_invalid_experiments
    fails every tick, naming the file and its problem."""
    with headless_page(browser) as page:
        page.goto(f"{live.base}/locations/crucible/sensors/crucible_invalid_experiments")
        deadline = time.monotonic() + 90
        while "no_such_stage" not in page.text():
            assert time.monotonic() < deadline, page.text()[:3000]
            page.goto(f"{live.base}/locations/crucible/sensors/crucible_invalid_experiments")
            page.wait_for_text("crucible_invalid_experiments")
            page.click_button("View")  # the failed tick's error
            time.sleep(1)
        text = page.text()
        shot(page, live.logs / "6_invalid_files_sensor.png")
        assert "broken.yaml:3: pipeline[0].name: stage 'no_such_stage' is not registered" in text
