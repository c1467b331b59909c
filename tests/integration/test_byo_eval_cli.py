"""Bring your own evaluation under the real ``dagster job execute`` CLI and a run launched from
the webserver (issue 24: "everything above runs under dagster job execute and from the UI"):
an experiment folder with a local dataset file beside it (a relative path: the experiment's
folder, not the CLI's working directory), a prompt template with a system message, two scorers
and a budget that runs out, against the bundled test server over HTTP."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crucible_dagster.contrib.llm_server import ServerState, llm_server
from tests.conftest import ROOT, subprocess_env
from tests.dagster_helpers import instance_at
from tests.integration.test_dagster_cli import dagster_bin

JOB = "byo_eval"
DATASET_KEY = dg.AssetKey(["crucible", "datasets", "byo_qa"])
SYSTEM = "Answer with the number only."
DATASET_QUERY = """
query Dataset($key: AssetKeyInput!) {
  assetOrError(assetKey: $key) {
    ... on Asset {
      assetMaterializations(limit: 1) {
        runId
        tags { key value }
        metadataEntries {
          label
          ... on IntMetadataEntry { intValue }
          ... on TextMetadataEntry { text }
        }
      }
    }
  }
}
"""
ROWS = [
    # the server sums 'a+b'; every third reference is off by one, so both scorers say 0 there
    {"id": f"q{i}", "input": f"{i}+2", "output": str(i + 2 + (i % 3 == 0))}
    for i in range(10)
]


def write_folder(folder: Path, url: str, data_file: str) -> None:
    """The experiments folder: the experiment, and its data in ``data/`` beside it."""
    (folder / "data").mkdir(parents=True)
    if data_file.endswith(".jsonl"):
        (folder / data_file).write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    else:
        pq.write_table(pa.Table.from_pylist(ROWS), folder / data_file)
    options = (
        "{model: m, cache: false, concurrency: 1, price_per_million_input: 1000.0, "
        "price_per_million_output: 2000.0, tokenizer: words, expected_completion_tokens: 1}"
    )
    (folder / f"{JOB}.yaml").write_text(
        f"id: {JOB}\nseed: 11\n"
        f"dataset: {{name: byo_qa, provider: local, options: {{path: {data_file}}}}}\n"
        "budget: {max_requests: 6}\n"
        f"backend: {{id: openai_compatible, endpoint_url: '{url}', options: {options}}}\n"
        "pipeline:\n"
        "  - name: predict\n    options:\n      reference: output\n      prompt:\n"
        f"        system: {SYSTEM}\n        user: '{{{{ input }}}}'\n"
        "  - name: score\n    options:\n"
        "      scorers: [{name: em, id: exact_match}, {name: num, id: numeric}]\n"
    )


@pytest.fixture
def server() -> Iterator[tuple[str, ServerState]]:
    with llm_server() as found:
        yield found


def check_run(run_dir: Path, state: ServerState, data_file: Path) -> dict[str, Any]:
    """What every way of running it must show: the budget spent and nothing lost, the prompt
    sent as rendered, both scorers' columns, the dataset read from the experiment's folder."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "budget_exhausted"
    assert manifest["metrics"]["budget"]["spent"]["requests"] == 6 == state.requests["m"]
    assert manifest["metrics"]["dataset"]["source"] == str(data_file)
    for body in state.bodies:
        assert body["messages"][0] == {"role": "system", "content": SYSTEM}
    sent = sorted(body["messages"][1]["content"] for body in state.bodies)
    assert sent == sorted(r["input"] for r in ROWS[:6])
    table = pd.read_parquet(run_dir / "predictions.parquet")
    answered = table[table["prediction"].notna()]
    assert len(table) == 10 and len(answered) == 6  # the refused four are kept, unanswered
    assert answered["score_em"].sum() == 4 == answered["score_num"].sum()  # q0 and q3 wrong
    return dict(manifest)


def test_dagster_job_execute_runs_a_users_own_evaluation(
    tmp_path: Path, artifacts_dir: Path, server: tuple[str, ServerState]
) -> None:
    url, state = server
    folder = tmp_path / "experiments"
    write_folder(folder, url, "data/qa.jsonl")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = subprocess_env(
        DAGSTER_HOME=str(home),
        CRUCIBLE_ARTIFACTS_DIR=str(artifacts_dir),
        CRUCIBLE_EXPERIMENTS_DIR=str(folder),
    )
    proc = subprocess.run(
        [dagster_bin(), "job", "execute", "-f", "definitions.py", "-j", JOB],
        cwd=ROOT,  # not the experiments folder: the data path is the experiment file's
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with instance_at(home) as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["crucible/status"] == "budget_exhausted"
        [observed] = instance.fetch_observations(DATASET_KEY, limit=5).records
        observation = observed.asset_observation
        assert observation is not None
        version = (observation.tags or {})["dagster/data_version"]
    manifest = check_run(artifacts_dir / JOB / run.run_id, state, folder / "data" / "qa.jsonl")
    assert version == manifest["data_fingerprints"]["byo_qa"][:32]


@pytest.mark.live
def test_a_run_launched_from_the_webserver_runs_the_same_evaluation(
    tmp_path: Path, artifacts_dir: Path, server: tuple[str, ServerState]
) -> None:
    from tests.integration.test_live_webserver import live_dagster_at

    url, state = server
    folder = tmp_path / "experiments"
    write_folder(folder, url, "data/qa.parquet")
    with live_dagster_at(
        tmp_path, artifacts_dir, ROOT / "dagster.yaml", CRUCIBLE_EXPERIMENTS_DIR=str(folder)
    ) as live:
        client = live.client
        run_id = submit_when_loaded(client, JOB)
        status = wait_for(client, run_id)
        assert status == "SUCCESS", (tmp_path / "daemon.log").read_text()[-3000:]
        # the dataset asset, materialized from the UI's side: the dataset as named
        materialized = client.submit_job_execution(
            "__ASSET_JOB", repository_location_name="crucible", asset_selection=[DATASET_KEY]
        )
        assert wait_for(client, materialized) == "SUCCESS"
        asset = client._execute(DATASET_QUERY, {"key": {"path": DATASET_KEY.path}})
    manifest = check_run(artifacts_dir / JOB / run_id, state, folder / "data" / "qa.parquet")
    (materialization,) = asset["assetOrError"]["assetMaterializations"]
    assert materialization["runId"] == materialized
    entries = {e["label"]: e for e in materialization["metadataEntries"]}
    assert entries["dagster/row_count"]["intValue"] == 10
    fingerprint = manifest["data_fingerprints"]["byo_qa"]  # no sample: the dataset as named
    assert entries["crucible/fingerprint"]["text"] == fingerprint
    tags = {t["key"]: t["value"] for t in materialization["tags"]}
    assert tags["dagster/data_version"] == fingerprint[:32]


def submit_when_loaded(client: Any, job: str) -> str:
    """Launch ``job`` through GraphQL once the code location has loaded it."""
    from dagster_graphql import DagsterGraphQLClientError

    deadline = time.monotonic() + 120
    while True:
        try:
            return str(client.submit_job_execution(job, repository_location_name="crucible"))
        except DagsterGraphQLClientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def wait_for(client: Any, run_id: str) -> str:
    deadline = time.monotonic() + 240
    status = "STARTING"
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id).value
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(0.25)
    return str(status)
