"""Live: dagster-webserver and dagster-daemon on loopback, serving the checkout's experiments.

One stack for the module: a run submitted through the GraphQL client with a config override,
and the asset side in a real browser (issue 12: headless Chromium opens the report asset,
clicks Materialize, waits for the run, then sees the dataset upstream in the lineage view and
the comparison as a table). The two read different experiments' runs and assets, so neither
sees the other's; one stack instead of two saves a webserver, a daemon and a code server
starting (about 9 s of CPU). Screenshots land in the test's temporary folder."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import requests
import yaml
from dagster_graphql import DagsterGraphQLClient

from tests.conftest import ROOT, subprocess_env
from tests.dagster_helpers import instance_at, migrate_instance
from tests.integration.cdp import headless_page

pytestmark = pytest.mark.live

DEFAULT_YAML_QUERY = """
query DefaultYaml($selector: PipelineSelector!) {
  runConfigSchemaOrError(selector: $selector) {
    __typename
    ... on RunConfigSchema { rootDefaultYaml }
  }
}
"""
ASSET_QUERY = """
query Report($key: AssetKeyInput!) {
  assetOrError(assetKey: $key) {
    __typename
    ... on Asset { assetMaterializations(limit: 1) { runId metadataEntries { label } } }
  }
}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def workspace_of(home: Path) -> Path:
    """The workspace a live stack's servers load: the code server ``_live`` started for ``home``
    (``code_server``), else the checkout's workspace.yaml (each server then starts its own)."""
    shared = home / "workspace.yaml"
    return shared if shared.exists() else ROOT / "workspace.yaml"


@contextlib.contextmanager
def dagster_daemon(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``dagster-daemon run`` on the instance ``env`` names, logging to ``log``; stopped after."""
    workspace = workspace_of(Path(env["DAGSTER_HOME"]))
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workspace)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            yield process
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Stack:
    """A live stack: its GraphQL client and port, its instance's home, the folder of its logs
    (webserver, daemon and code server), and the artifacts root its runs write under."""

    client: DagsterGraphQLClient
    port: int
    home: Path
    logs: Path
    artifacts: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def instance(self) -> dg.DagsterInstance:
        """The stack's instance, opened from its home as another process would."""
        return instance_at(self.home)


def live_dagster_at(
    tmp_path: Path, artifacts_dir: Path, dagster_yaml: Path, **env_extra: str
) -> contextlib.AbstractContextManager[Stack]:
    """dagster-webserver and dagster-daemon on a fresh DAGSTER_HOME with ``dagster_yaml``, their
    logs in ``tmp_path``; yields the ``Stack``."""
    return _live(tmp_path, artifacts_dir, dagster_yaml, True, env_extra)


def live_webserver_at(
    tmp_path: Path, artifacts_dir: Path, dagster_yaml: Path, **env_extra: str
) -> contextlib.AbstractContextManager[Stack]:
    """``live_dagster_at`` without the daemon: the test starts it (``dagster_daemon``) when
    what it needs is in place."""
    return _live(tmp_path, artifacts_dir, dagster_yaml, False, env_extra)


def dequeued_every_second(dagster_yaml: Path) -> dict[str, Any]:
    """``dagster_yaml``'s settings, its run queue read by the daemon every second.

    Every run submitted to the webserver waits in the queue (Dagster's QueuedRunCoordinator, its
    default as in ``dagster.queued.yaml``) until the daemon's next look, every 5 s by default: a
    test that submits four runs one after another waited 10 s on average for nothing. The
    daemon also launches the runs it dequeues from threads: each launch waits for the run's
    process to load the code (1 to 3 s), and a backfill's four runs were launched one after
    another over 11 s on a loaded machine. The coordinator, its limits and its daemon stay what
    the file says; only how often and how it launches is set.
    """
    config = yaml.safe_load(dagster_yaml.read_text()) or {}
    coordinator = config.setdefault(
        "run_coordinator",
        {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"},
    )
    assert coordinator["class"] == "QueuedRunCoordinator", coordinator
    settings = coordinator.setdefault("config", {})
    settings["dequeue_interval_seconds"] = 1
    settings.setdefault("dequeue_use_threads", True)
    return dict(config)


@contextlib.contextmanager
def _live(
    tmp_path: Path, artifacts_dir: Path, dagster_yaml: Path, daemon: bool, env_extra: dict[str, str]
) -> Iterator[Stack]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(dequeued_every_second(dagster_yaml)))
    env = subprocess_env(
        DAGSTER_HOME=str(home), CRUCIBLE_ARTIFACTS_DIR=str(artifacts_dir), **env_extra
    )
    bindir = Path(sys.executable).parent
    migrate_instance(home)
    port = free_port()
    with contextlib.ExitStack() as stack:
        stack.enter_context(code_server(env, home, tmp_path / "code_server.log"))
        log = stack.enter_context(open(tmp_path / "webserver.log", "w"))
        webserver = subprocess.Popen(
            [str(bindir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
             "-w", str(workspace_of(home))],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        stack.callback(_stop, webserver)
        if daemon:
            stack.enter_context(dagster_daemon(env, tmp_path / "daemon.log"))
        _wait_for_webserver(port, tmp_path / "webserver.log")
        client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=60)
        yield Stack(client, port, home, tmp_path, artifacts_dir)


@contextlib.contextmanager
def code_server(env: dict[str, str], home: Path, log: Path) -> Iterator[None]:
    """One code server for the stack's webserver and daemon, serving the checkout's
    workspace.yaml location (``crucible``, definitions.py run from the checkout).

    Given a python_file location, the webserver and the daemon each start a code server of their
    own, which loads definitions.py in one more process (about 1.5 s of CPU a stack). The runs
    they launch are started by this server, as they were by theirs. Written to
    ``home/workspace.yaml``, which ``workspace_of`` gives the servers.
    """
    from dagster._grpc.client import DagsterGrpcClient

    (location,) = (entry["python_file"] for entry in yaml.safe_load(
        (ROOT / "workspace.yaml").read_text())["load_from"])  # fmt: skip
    port = free_port()
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "dagster", "api", "grpc", "-h", "127.0.0.1", "-p", str(port),
             "-f", location["relative_path"], "-d", str(ROOT / location["working_directory"]),
             "--location-name", location["location_name"]],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        client = DagsterGrpcClient(port=port, host="127.0.0.1")
        deadline = time.monotonic() + 120
        while True:
            try:
                client.ping("up")
                break
            except Exception:  # not listening yet
                assert process.poll() is None, "code server exited:\n" + log.read_text()[-3000:]
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.25)
        grpc_server = {
            "host": "127.0.0.1",
            "port": port,
            "location_name": location["location_name"],
        }
        (home / "workspace.yaml").write_text(
            yaml.safe_dump({"load_from": [{"grpc_server": grpc_server}]})
        )
        yield
    finally:
        _stop(process)


def _wait_for_webserver(port: int, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail("dagster-webserver did not start:\n" + log.read_text()[-3000:])


@pytest.fixture(scope="module")
def live_dagster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("live_checkout")
    artifacts = root / "artifacts"
    with live_dagster_at(root, artifacts, ROOT / "dagster.yaml") as stack:
        yield stack


def test_submit_run_with_config_override_and_read_launchpad_defaults(live_dagster: Stack) -> None:
    client = live_dagster.client
    selector = {
        "repositoryLocationName": "crucible",
        "repositoryName": "__repository__",
        "pipelineName": "core_pipeline_demo",
    }
    deadline = time.monotonic() + 120
    while True:  # the webserver answers before its code location has loaded
        data = client._execute(DEFAULT_YAML_QUERY, {"selector": selector})
        if (
            data["runConfigSchemaOrError"]["__typename"] == "RunConfigSchema"
            or time.monotonic() > deadline
        ):
            break
        time.sleep(1)
    assert data["runConfigSchemaOrError"]["__typename"] == "RunConfigSchema", data
    defaults = yaml.safe_load(data["runConfigSchemaOrError"]["rootDefaultYaml"])
    assert defaults["ops"]["data_checks"]["config"]["required_fields"] == ["input", "output"]
    assert defaults["ops"]["guardrails"]["config"]["adapter"] == "pii"

    run_id = client.submit_job_execution(
        "core_pipeline_demo",
        repository_location_name="crucible",
        run_config={
            "ops": {"data_checks": {"config": {"required_fields": ["input"], "fail_fast": True}}}
        },
    )
    deadline = time.monotonic() + 240
    status = None
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id)
        if status.value in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(0.25)
    assert status is not None and status.value == "SUCCESS", (
        f"run ended {status}; daemon log:\n"
        + (live_dagster.logs / "daemon.log").read_text()[-3000:]
    )
    asset = client._execute(
        ASSET_QUERY, {"key": {"path": ["crucible", "core_pipeline_demo", "summary"]}}
    )["assetOrError"]
    assert asset["__typename"] == "Asset"
    (materialization,) = asset["assetMaterializations"]
    assert materialization["runId"] == run_id
    assert "preview" in {entry["label"] for entry in materialization["metadataEntries"]}
    manifest = json.loads(
        (live_dagster.artifacts / "core_pipeline_demo" / run_id / "manifest.json").read_text()
    )
    assert manifest["stages"]["data_checks"]["options"] == {
        "required_fields": ["input"],
        "fail_fast": True,
        "checker": None,
    }


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


@pytest.mark.slow
def test_materialize_from_the_catalog_then_lineage_and_table(
    live_dagster: Stack, browser: str, tmp_path: Path
) -> None:
    base = live_dagster.base
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
        with live_dagster.instance() as instance:
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
