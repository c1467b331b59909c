"""Issue 26 items 3, 5 and 6 in a real browser: headless Chromium against one dagster-webserver
and dagster-daemon shared by this module's tests. A report's plots render inline (images the
browser drew, no link to a path on the machine that ran the job); a one-run sweep's run shows
its trial steps and its asset the table of configurations; backfilled partitions, and a
report its job made, stay synced once their dataset is materialized; Materialize on a sweep's
report runs the job's steps. Screenshots land in each
test's temporary folder."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster_graphql import DagsterGraphQLClient

from tests.conftest import ROOT, subprocess_env
from tests.integration.cdp import Page, browser_path, headless_page
from tests.integration.test_live_schedule_gate import _submit, _wait
from tests.integration.test_live_webserver import Stack, dagster_daemon, live_webserver_at
from tests.integration.test_partitioned_sweep import BACKFILL

# one worker runs them all, on the one live server of the module
pytestmark = [pytest.mark.live, pytest.mark.slow, pytest.mark.xdist_group("ui_plots_sweeps")]
FOLDER = ROOT / "tests" / "data" / "ui_plots_sweeps"
TRIALS = dg.AssetKey(["crucible", "partitioned", "trials"])
DATASET = dg.AssetKey(["crucible", "datasets", "breast_cancer"])
PARTITIONS = ["level_0_8|1", "level_0_9|1"]


@dataclass
class Live(Stack):
    browser: str
    runs: dict[str, str]  # job -> the run this module submitted


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    browser = browser_path()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed")
    tmp = tmp_path_factory.mktemp("ui_plots_sweeps")
    artifacts = tmp / "artifacts"
    extra = {"CRUCIBLE_EXPERIMENTS_DIR": str(FOLDER)}
    with live_webserver_at(tmp, artifacts, ROOT / "dagster.yaml", **extra) as stack:
        client = stack.client
        # Everything is asked for before the daemon starts: its backfill loop runs at start-up
        # and then every 30 s, and the queued runs go meanwhile.
        _backfill(client)
        # Dagster's community dialog (shown on a loopback origin) marked seen, as its Skip does
        assert client._execute("mutation { setNuxSeen }")["setNuxSeen"]
        runs = {
            job: _submit(client, job, repository_location_name="crucible")
            for job in ("plotted", "fanned")
        }
        home = str(stack.home)
        env = subprocess_env(DAGSTER_HOME=home, CRUCIBLE_ARTIFACTS_DIR=str(artifacts), **extra)
        with dagster_daemon(env, tmp / "daemon.log"):
            yield Live(**vars(stack), browser=browser, runs=runs)


def _backfill(client: DagsterGraphQLClient) -> None:
    deadline = time.monotonic() + 120
    params = {"partitionNames": PARTITIONS, "assetSelection": [{"path": TRIALS.path}]}
    while True:  # the webserver answers before its code location has loaded
        data = client._execute(BACKFILL, {"params": params})
        if data["launchPartitionBackfill"]["__typename"] == "LaunchBackfillSuccess":
            return
        assert time.monotonic() < deadline, data
        time.sleep(1)


def _open(page: Page, url: str, needle: str) -> str:
    page.goto(url)
    return page.wait_for_text(needle)


def _materialize(page: Page, url: str) -> None:
    """Click the asset page's Materialize once it is enabled (the location has loaded)."""
    _open(page, url, "Materialize")
    deadline = time.monotonic() + 60
    while not page.click_button("Materialize"):
        assert time.monotonic() < deadline, page.text()[:3000]
        time.sleep(1)


def _click_link(page: Page, label: str) -> None:
    script = (
        "(() => { const a = [...document.querySelectorAll('a')]"
        f".find(e => e.innerText.trim() === {json.dumps(label)});"
        " if (a) { a.click(); return true; } return false; })()"
    )
    assert page.evaluate(script), f"no link {label!r}: {page.text()[:2000]}"


def _images(page: Page, timeout: float = 30) -> list[dict[str, Any]]:
    """The page's data-URI images once the browser has decoded every one of them (the first
    scrolled into view, for the screenshot)."""
    script = (
        "[...document.querySelectorAll('img')].filter(i => i.src.startsWith('data:image/'))"
        ".map(i => ({alt: i.alt, complete: i.complete, naturalWidth: i.naturalWidth,"
        " naturalHeight: i.naturalHeight, width: i.getBoundingClientRect().width,"
        " height: i.getBoundingClientRect().height}))"
    )
    deadline = time.monotonic() + timeout
    while True:
        images: list[dict[str, Any]] = page.evaluate(script) or []
        if images and all(i["complete"] for i in images):
            page.evaluate("document.querySelector('img[src^=\"data:image/\"]').scrollIntoView()")
            time.sleep(1)  # the dialog's fade-in, before a screenshot
            return images
        assert time.monotonic() < deadline, f"no image drawn: {page.text()[:2000]}"
        time.sleep(0.5)


def _links_to_local_paths(page: Page, artifacts: Path) -> list[list[str]]:
    """Every link on the page whose target is a path of this machine (or a file: URL)."""
    script = (
        "[...document.querySelectorAll('a[href]')].map(a => [a.innerText, a.getAttribute('href')])"
    )
    links: list[list[str]] = page.evaluate(script) or []
    local = (str(artifacts), "file:", "/tmp/", str(ROOT))
    return [link for link in links if any(marker in link[1] for marker in local)]


def _wait_for_run(live: Live, job: str) -> str:
    run_id = live.runs[job]
    assert _wait(live.client, run_id) == "SUCCESS", (live.home.parent / "daemon.log").read_text()[
        -3000:
    ]
    return run_id


def test_a_reports_plots_render_in_the_browser_and_no_path_is_a_link(
    live: Live, tmp_path: Path
) -> None:
    _wait_for_run(live, "plotted")
    with headless_page(live.browser) as page:
        text = _open(page, f"{live.base}/assets/crucible/plotted/summary", "[Show Markdown]")
        assert "preview" in text
        page.screenshot(tmp_path / "1_report_asset.png")
        # the path entries are text the UI copies on a click, not links
        assert str(live.artifacts) in text
        assert _links_to_local_paths(page, live.artifacts) == []
        _click_link(page, "[Show Markdown]")
        images = _images(page)
        page.screenshot(tmp_path / "2_report_preview_plots.png")
        assert sorted(i["alt"] for i in images) == ["distributions", "forest plot"]
        for image in images:  # decoded by the browser, and laid out at a visible size
            assert image["naturalWidth"] > 100 and image["naturalHeight"] > 50, image
            assert image["width"] > 100 and image["height"] > 50, image
        assert _links_to_local_paths(page, live.artifacts) == []
    assert all(
        (tmp_path / n).stat().st_size > 10_000
        for n in ("1_report_asset.png", "2_report_preview_plots.png")
    )


def test_a_one_run_sweep_fans_out_and_its_asset_tables_the_configurations(
    live: Live, tmp_path: Path
) -> None:
    run_id = _wait_for_run(live, "fanned")
    trial_steps = [
        f"run_trial[trials_{a}_to_{a + 2}]" for a in (1, 4, 7, 10)
    ]  # 12 trials, 3 a step
    with headless_page(live.browser) as page:
        _open(page, f"{live.base}/runs/{run_id}", "Succeeded (6)")  # plan, 4 trial steps, compare
        page.evaluate(
            "(() => { const e = [...document.querySelectorAll('*')].find(e =>"
            " e.children.length === 0 && e.innerText && e.innerText.trim() === 'Succeeded (6)');"
            " if (e) { e.click(); } })()"
        )
        text = page.wait_for_text(trial_steps[-1])
        assert all(step in text for step in trial_steps), text[:3000]
        page.screenshot(tmp_path / "1_sweep_run_steps.png")
        text = _open(page, f"{live.base}/assets/crucible/fanned/sweep", "ci_high")
        for header in ("configuration", "parameters", "mean", "ci_low"):
            assert header in text
        with live.instance() as instance:
            event = instance.get_latest_materialization_event(
                dg.AssetKey(["crucible", "fanned", "sweep"])
            )
        assert event is not None and event.asset_materialization is not None
        table = event.asset_materialization.metadata["configurations"]
        assert isinstance(table, dg.TableMetadataValue)
        for record in table.records:  # each row as the UI shows it, rounded
            row = record.data
            assert f"{row['configuration']}\t" in text
            assert f"\t{row['mean']}\t{row['ci_low']}\t{row['ci_high']}" in text, row
        page.screenshot(tmp_path / "2_sweep_asset_table.png")
        _click_link(page, "[Show Markdown]")
        images = _images(page)
        assert images and all(i["naturalWidth"] > 100 for i in images), images
        page.screenshot(tmp_path / "3_sweep_preview_plots.png")
        assert _links_to_local_paths(page, live.artifacts) == []
    for name in ("1_sweep_run_steps.png", "2_sweep_asset_table.png", "3_sweep_preview_plots.png"):
        assert (tmp_path / name).stat().st_size > 10_000


def test_materialize_on_a_sweeps_report_runs_its_steps_with_the_experiment_tag(
    live: Live, tmp_path: Path
) -> None:
    """The catalog's Materialize on the sweep's report runs the job's steps (plan, the four
    groups of trials, compare), not one opaque step, in a run tagged with the experiment."""
    job_run = _wait_for_run(live, "fanned")
    key = dg.AssetKey(["crucible", "fanned", "sweep"])
    with headless_page(live.browser) as page:
        _materialize(page, f"{live.base}/assets/crucible/fanned/sweep")
        deadline = time.monotonic() + 120
        with live.instance() as instance:
            while True:
                event = instance.get_latest_materialization_event(key)
                if event is not None and event.run_id != job_run:
                    break
                runs = [(r.job_name, r.status.value) for r in instance.get_runs(limit=10)]
                assert time.monotonic() < deadline, f"{runs}\n{page.text()[:2000]}"
                time.sleep(1)
            run = instance.get_run_by_id(event.run_id)
        assert run is not None and run.job_name == "__ASSET_JOB"
        assert run.tags["crucible/experiment"] == "fanned"
        assert _wait(live.client, run.run_id) == "SUCCESS"
        _open(page, f"{live.base}/runs/{run.run_id}", "Succeeded (6)")
        # the run's chart draws its steps as its logs load: each must appear
        for step in (
            "fanned__sweep.plan_trials",
            "fanned__sweep.run_trial",
            "fanned__sweep.compare",
        ):
            page.wait_for_text(step)
        page.screenshot(tmp_path / "4_sweep_materialize_steps.png")
        text = _open(page, f"{live.base}/runs?q[]=tag:crucible/experiment=fanned", run.run_id[:8])
        assert job_run[:8] in text  # the job's run and Materialize's, both found by the tag
        page.screenshot(tmp_path / "5_runs_by_experiment.png")
    for name in ("4_sweep_materialize_steps.png", "5_runs_by_experiment.png"):
        assert (tmp_path / name).stat().st_size > 10_000


@pytest.fixture(scope="module")
def dataset_from_ui(live: Live, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The dataset materialized from its page, once the partitions and the report were made
    from it (the partitions by the backfill, the report by its job)."""
    _wait_for_run(live, "plotted")
    with live.instance() as instance:
        deadline = time.monotonic() + 240
        while set(instance.get_materialized_partitions(TRIALS)) < set(PARTITIONS):
            assert time.monotonic() < deadline, (live.home.parent / "daemon.log").read_text()[
                -3000:
            ]
            time.sleep(1)
        before = len(instance.fetch_materializations(DATASET, limit=100).records)
    with headless_page(live.browser) as page:
        _materialize(page, f"{live.base}/assets/crucible/datasets/breast_cancer")
        with live.instance() as instance:
            deadline = time.monotonic() + 120
            while len(instance.fetch_materializations(DATASET, limit=100).records) <= before:
                assert time.monotonic() < deadline, page.text()[:2000]
                time.sleep(1)
        page.screenshot(tmp_path_factory.mktemp("dataset") / "dataset_materialized.png")


def _synced(page: Page, url: str, status: str) -> str:
    """The page of an asset (or partition) once its status and then its staleness showed."""
    _open(page, url, "Latest materialization")
    page.wait_for_text(status)
    time.sleep(2)  # the staleness is fetched after the status
    return page.text()


def test_backfilled_partitions_stay_synced_once_the_dataset_is_materialized(
    live: Live, dataset_from_ui: None, tmp_path: Path
) -> None:
    with headless_page(live.browser) as page:
        for index, partition in enumerate(PARTITIONS, start=2):
            url = (
                f"{live.base}/assets/crucible/partitioned/trials?view=partitions"
                f"&partition={partition.replace('|', '%7C')}"
            )
            text = _synced(page, url, f"{partition}\nMaterialized")  # the partition's badge
            page.screenshot(tmp_path / f"{index}_partition_{partition.split('|')[0]}.png")
            assert "Unsynced" not in text, text[:3000]
            assert "fold_scores.model" in text  # its number, as float metadata
    assert (tmp_path / "2_partition_level_0_8.png").stat().st_size > 10_000


def test_a_report_made_by_its_job_stays_synced_once_the_dataset_is_materialized(
    live: Live, dataset_from_ui: None, tmp_path: Path
) -> None:
    """The report of ``plotted`` (made by its job, from the dataset before the dataset's
    Materialize) shows no "Unsynced": its job's materialization records the code version and
    the dataset's version as it loaded it (it said "has a new input" once made, and "the
    dataset has a new materialization" after the dataset's Materialize)."""
    run_id = _wait_for_run(live, "plotted")
    with headless_page(live.browser) as page:
        url = f"{live.base}/assets/crucible/plotted/summary"
        text = _synced(page, url, "Latest materialization")
        page.screenshot(tmp_path / "1_report_synced.png")
        assert "Unsynced" not in text, text[:3000]
        assert run_id[:8] in text  # the job's run made the latest materialization
        _open(page, f"{live.base}/assets/crucible/plotted/summary?view=lineage", "breast_cancer")
        time.sleep(2)  # the lineage's status badges
        page.screenshot(tmp_path / "2_report_lineage_synced.png")
        assert "Unsynced" not in page.text(), page.text()[:3000]
    assert (tmp_path / "1_report_synced.png").stat().st_size > 10_000
