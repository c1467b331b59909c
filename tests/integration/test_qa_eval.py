"""The evaluation demo (issue 24 §6): experiments/qa_eval.yaml against the bundled LLM server,
run by `dagster job execute` (the real CLI), launched through the webserver's GraphQL, and by
`make demo-eval`. The dry run's cost is within 1% of what the run then spends against the
server (counted by the server); the report carries the per-sample comparison and the cost."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from crucible_dagster.contrib.llm_server import ServerState, llm_server
from tests.conftest import ROOT, Cli, subprocess_env
from tests.dagster_helpers import instance_at
from tests.integration.test_dagster_cli import job_execute

QA_EVAL = ROOT / "experiments" / "qa_eval.yaml"
CONFIGURATIONS = [
    "model_qa_small__prompt_terse",
    "model_qa_small__prompt_worked",
    "model_qa_large__prompt_terse",
    "model_qa_large__prompt_worked",
]


def prices() -> tuple[float, float]:
    """The file's own prices per million tokens (input, output)."""
    data = yaml.safe_load(QA_EVAL.read_text(encoding="utf-8"))
    options = data["pipeline"][0]["options"]["variants"]["model"]["options"]
    return options["price_per_million_input"], options["price_per_million_output"]


def spent_by_the_server(state: ServerState) -> float:
    price_in, price_out = prices()
    return (state.prompt_tokens * price_in + state.completion_tokens * price_out) / 1e6


def check_sweep(sweep_dir: Path, state: ServerState) -> dict[str, Any]:
    """The sweep's record and reports: compared per sample, with the cost the server counted."""
    sweep = json.loads((sweep_dir / "sweep.json").read_text(encoding="utf-8"))
    assert sweep["design"]["kind"] == "per_sample" and sweep["design"]["blocks"] == 40
    (omnibus,) = sweep["comparison"]["omnibus"]
    assert omnibus["test"] == "cochran_q" and omnibus["p_value"] < 0.001
    pairs = [r for r in sweep["comparison"]["comparisons"] if r["test"] == "mcnemar"]
    assert len(pairs) == 6
    small_large = {(r["group_a"], r["group_b"]): r for r in pairs}[
        ("model_qa_small__prompt_terse", "model_qa_large__prompt_terse")
    ]
    assert small_large["p_adjusted"] < 0.05 and small_large["estimate"] < 0  # large is better
    assert sweep["best"]["params"]["model"] == "qa-large"
    cost = sweep["cost"]
    assert list(cost["configurations"]) == CONFIGURATIONS
    assert cost["total"]["requests"] == sum(state.requests.values()) == 160
    assert cost["total"]["prompt_tokens"] == state.prompt_tokens
    assert cost["total"]["completion_tokens"] == state.completion_tokens
    assert cost["total"]["cost"] == pytest.approx(spent_by_the_server(state), rel=1e-9)
    report = (sweep_dir / "sweep.md").read_text(encoding="utf-8")
    assert "Compared per sample: 40 samples" in report
    assert "## Cost" in report and "### Decision record" in report
    assert "Budget: max\\_cost 0.01, max\\_requests 400." in report
    html = (sweep_dir / "sweep.html").read_text(encoding="utf-8")
    assert "<h2>Cost</h2>" in html
    manifests = [json.loads(p.read_text()) for p in sweep_dir.glob("trials/*/manifest.json")]
    assert sorted(m["status"] for m in manifests) == ["completed"] * 4
    return sweep


def test_the_dry_run_prices_what_dagster_job_execute_then_spends(
    cli: Cli, tmp_path: Path, artifacts_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with llm_server() as (url, state):
        monkeypatch.setenv("CRUCIBLE_LLM_URL", url)
        monkeypatch.setenv("CRUCIBLE_CACHE_DIR", str(tmp_path / "cache"))
        dry = cli("run", QA_EVAL, "--dry-run", "--json")
        assert dry.code == 0 and sum(state.requests.values()) == 0  # nothing was sent
        assert not artifacts_dir.exists() and not (tmp_path / "cache").exists()
        plan = json.loads(dry.out)
        home = job_execute("qa_eval", tmp_path, artifacts_dir, timeout=600)
    assert plan["total"]["requests"] == sum(state.requests.values()) == 160
    assert plan["total"]["cost"] == pytest.approx(spent_by_the_server(state), rel=0.01)
    assert state.requests == {"qa-small": 80, "qa-large": 80} and state.rejected == {}
    import dagster as dg

    with instance_at(home) as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS and run.job_name == "qa_eval"
    check_sweep(artifacts_dir / "qa_eval" / run.run_id, state)


@pytest.mark.live  # a webserver and the daemon that dequeues the launched run
def test_qa_eval_launched_through_the_webservers_graphql(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    from tests.integration.test_live_webserver import live_dagster_at

    with llm_server() as (url, state):
        env = {"CRUCIBLE_LLM_URL": url, "CRUCIBLE_CACHE_DIR": str(tmp_path / "cache")}
        with live_dagster_at(tmp_path, artifacts_dir, ROOT / "dagster.yaml", **env) as live:
            client = live.client
            run_id = _submit_when_loaded(client, "qa_eval")
            status = None
            deadline = time.monotonic() + 480
            while time.monotonic() < deadline:
                status = client.get_run_status(run_id)
                if status.value in ("SUCCESS", "FAILURE", "CANCELED"):
                    break
                time.sleep(1)
            log = (tmp_path / "daemon.log").read_text()[-3000:]
            assert status is not None and status.value == "SUCCESS", log
    check_sweep(artifacts_dir / "qa_eval" / run_id, state)


def _submit_when_loaded(client: Any, job: str) -> str:
    """The run id; the webserver answers before its code location has loaded."""
    from dagster_graphql import DagsterGraphQLClientError

    deadline = time.monotonic() + 180
    while True:
        try:
            return str(client.submit_job_execution(job, repository_location_name="crucible"))
        except DagsterGraphQLClientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_eval_prints_the_comparison_and_the_cost_and_stops_its_server(
    tmp_path: Path,
) -> None:
    home, artifacts = tmp_path / "home", tmp_path / "artifacts"
    command = ["make", "-s", "-o", ".venv/.installed", "demo-eval"]  # the venv counts as installed
    done = subprocess.run(
        [*command, f"DAGSTER_HOME={home}", f"CRUCIBLE_ARTIFACTS_DIR={artifacts}"],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    said = done.stdout + done.stderr
    assert done.returncode == 0, said[-3000:]
    assert " - DEBUG - " not in said and "Traceback" not in said and "Warning" not in said, said
    trials = [line.split()[1] for line in said.splitlines() if line.startswith("  trial ")]
    assert sorted(trials) == sorted(CONFIGURATIONS), said
    assert "  cochran_q: p = " in said and said.count(": mcnemar, difference ") == 6, said
    assert "  total: 160 requests, cost " in said, said
    assert "The server answered 160 requests (qa-small 80, qa-large 80)" in said, said
    assert "Best: model_qa_large__prompt_" in said, said
    found = re.search(r"Bundled LLM server at http://127\.0\.0\.1:(\d+)/v1", said)
    assert found is not None, said
    with pytest.raises(OSError):  # stopped with the demo
        socket.create_connection(("127.0.0.1", int(found.group(1))), timeout=2).close()
