"""A raced sweep through Dagster's own front doors: ``dagster job execute`` (a subprocess, the
real CLI, every step its own process) and a run launched through the webserver's GraphQL with
the Launchpad's run config changing the race's alpha."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from crucible_dagster import Experiment
from crucible_dagster.sweeps.standalone import run_sweep
from tests.conftest import ROOT, subprocess_env
from tests.dagster_helpers import instance_at
from tests.integration.events import sweep_step
from tests.integration.test_dagster_cli import dagster_bin
from tests.test_racing_sweep import RACED

pytestmark = pytest.mark.slow


def raced_yaml(folder: Path, experiment_id: str, **dagster: Any) -> dict[str, Any]:
    """The raced sweep of ``tests.test_racing_sweep``, smaller (two configurations, 10 seeds:
    5 round steps, the fourth drops level 0.05), as an experiment file in ``folder``."""
    score = {**RACED["pipeline"][0], "options": {"level": "${params.level}"}}
    data = {**RACED, "id": experiment_id, "pipeline": [score], "seeds": list(range(1, 11))}
    data["parameters"] = {"level": [0.05, 0.95]}
    data.update({"dagster": dagster} if dagster else {})
    folder.mkdir(exist_ok=True)
    (folder / f"{experiment_id}.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return data


def test_dagster_job_execute_races_in_steps_of_their_own_processes(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    experiments = tmp_path / "experiments"
    data = raced_yaml(experiments, "raced_cli", executor="multiprocess")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = subprocess_env(
        DAGSTER_HOME=str(home),
        CRUCIBLE_ARTIFACTS_DIR=str(artifacts_dir),
        CRUCIBLE_EXPERIMENTS_DIR=str(experiments),
    )
    done = subprocess.run(
        [dagster_bin(), "job", "execute", "-f", "definitions.py", "-j", "raced_cli"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    with instance_at(home) as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        steps = {
            e.step_key: e.dagster_event.pid
            for e in instance.all_logs(run.run_id)
            if e.dagster_event is not None and e.dagster_event.event_type_value == "STEP_START"
        }
    steps = {sweep_step(key, "raced_cli"): pid for key, pid in steps.items()}
    assert "race_round_1" in steps and "compare_trials" in steps
    assert any(key.startswith("round_1_trials[") for key in steps)
    assert len(set(steps.values())) > 3  # the multiprocess executor: a process a step
    run_dir = artifacts_dir / "raced_cli" / run.run_id
    record = json.loads((run_dir / "race.json").read_text())
    alone = run_sweep(Experiment.model_validate(data), run_id="alone", artifacts=str(artifacts_dir))
    alone_record = json.loads((artifacts_dir / "raced_cli" / "alone" / "race.json").read_text())
    assert record["rounds"] == alone_record["rounds"]
    assert record["survivors"] == alone.comparison["race"]["survivors"] == ["level_0_95"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert manifest["metrics"]["sweep"]["race"] == alone.comparison["race"]


LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


@pytest.mark.live
def test_a_graphql_launch_with_another_alpha_races_with_it(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    """The Launchpad's run config (``resources.crucible.config.racing``) reaches the race: a
    launch through GraphQL with alpha 0.2 records it in race.json and the sweep's report."""
    from tests.integration.test_live_webserver import DEFAULT_YAML_QUERY, live_dagster_at

    experiments = tmp_path / "experiments"
    raced_yaml(experiments, "raced_live")
    with live_dagster_at(
        tmp_path, artifacts_dir, ROOT / "dagster.yaml", CRUCIBLE_EXPERIMENTS_DIR=str(experiments)
    ) as live:
        client = live.client
        selector = {
            "repositoryLocationName": "crucible",
            "repositoryName": "__repository__",
            "pipelineName": "raced_live",
        }
        deadline = time.monotonic() + 120
        while True:  # the webserver answers before its code location has loaded
            data = client._execute(DEFAULT_YAML_QUERY, {"selector": selector})
            kind = data["runConfigSchemaOrError"]["__typename"]
            if kind == "RunConfigSchema" or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert kind == "RunConfigSchema", data
        defaults = yaml.safe_load(data["runConfigSchemaOrError"]["rootDefaultYaml"])
        racing = defaults["resources"]["crucible"]["config"]["racing"]
        assert racing["alpha"] == 0.05 and racing["first_look"] == 3
        config = {"resources": {"crucible": {"config": {"racing": {**racing, "alpha": 0.2}}}}}
        params = {"selector": selector, "runConfigData": config, "mode": "default"}
        launched = client._execute(LAUNCH, {"params": params})["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        deadline = time.monotonic() + 300
        status = None
        while time.monotonic() < deadline:
            status = client.get_run_status(run_id)
            if status.value in ("SUCCESS", "FAILURE", "CANCELED"):
                break
            time.sleep(0.25)
    assert status is not None and status.value == "SUCCESS", status
    run_dir = artifacts_dir / "raced_live" / run_id
    record = json.loads((run_dir / "race.json").read_text())
    assert record["settings"]["alpha"] == 0.2 and record["finished"]
    sweep = json.loads((run_dir / "sweep.json").read_text())
    assert sweep["race"]["alpha"] == 0.2
