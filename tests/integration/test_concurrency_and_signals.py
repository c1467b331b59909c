"""Family 5 and 8 under Dagster: SIGTERM of `dagster job execute`, and concurrent runs on
SQLite and on PostgreSQL. Every run is recorded, and the instance and the manifest agree."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from tests.conftest import ROOT, subprocess_env
from tests.dagster_helpers import instance_at, instance_for_test, migrate_instance
from tests.integration.test_dagster_cli import dagster_bin
from tests.services import PG, postgres_db  # noqa: F401  (fixture)

QUICK = "id: quick\npipeline:\n  - name: validate\n"
SLOW = (
    "id: slow\npipeline:\n  - name: validate\n  - name: nap\n    module: tests.helpers:Sleep\n"
    "    options: {seconds: 60}\n  - name: report\n"
)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[dict[str, str]]:
    experiments = tmp_path / "experiments"
    experiments.mkdir()
    (experiments / "quick.yaml").write_text(QUICK)
    (experiments / "slow.yaml").write_text(SLOW)
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    yield subprocess_env(
        DAGSTER_HOME=str(home),
        CRUCIBLE_EXPERIMENTS_DIR=str(experiments),
        CRUCIBLE_ARTIFACTS_DIR=str(tmp_path / "artifacts"),
    )


def _execute(env: dict[str, str], job: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [dagster_bin(), "job", "execute", "-f", "definitions.py", "-j", job],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _manifests(env: dict[str, str], experiment: str) -> list[dict[str, object]]:
    root = Path(env["CRUCIBLE_ARTIFACTS_DIR"]) / experiment
    return [json.loads(p.read_text()) for p in sorted(root.glob("*/manifest.json"))]


def test_sigterm_of_dagster_job_execute_ends_both_records(project: dict[str, str]) -> None:
    proc = _execute(project, "slow")
    telemetry_glob = Path(project["CRUCIBLE_ARTIFACTS_DIR"]) / "slow"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        started = [
            p for p in telemetry_glob.glob("*/telemetry.jsonl") if '"stage": "nap"' in p.read_text()
        ]
        if started:
            break
        time.sleep(0.1)
    else:
        proc.kill()
        raise AssertionError("the nap stage never started")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    (manifest,) = _manifests(project, "slow")
    assert manifest["status"] == "interrupted", manifest["status"]
    with instance_at(project["DAGSTER_HOME"]) as instance:
        stored = instance.get_run_by_id(str(manifest["run_id"]))
        assert stored is not None
        assert stored.status in (dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.FAILURE)


#: runs started at once: two to a core on this project's 2-core machines, every one racing the
#: others for the instance's tables and the run directory (each `dagster job execute` costs
#: 2 to 3 s of CPU, most of it importing and loading before the race: the count is what the
#: property needs, not more)
CONCURRENT = 4


def _run_concurrently(env: dict[str, str], count: int = CONCURRENT) -> None:
    # First use of a fresh instance: create its tables once, before runs race for them
    # (SQLite and PostgreSQL alike; `make` does the same before the demo and the UI).
    migrate_instance(Path(env["DAGSTER_HOME"]))  # PostgreSQL's settings set in this process too
    procs = [_execute(env, "quick") for _ in range(count)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    manifests = _manifests(env, "quick")
    assert len(manifests) == count and {m["status"] for m in manifests} == {"completed"}
    with instance_at(env["DAGSTER_HOME"]) as instance:
        runs = instance.get_runs()
        assert len(runs) == count
        assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
        assert {r.run_id for r in runs} == {str(m["run_id"]) for m in manifests}


@pytest.mark.slow
def test_concurrent_runs_on_sqlite(project: dict[str, str]) -> None:
    _run_concurrently(project)


@pytest.mark.postgres
@pytest.mark.slow
def test_concurrent_runs_on_a_fresh_postgres_database(
    project: dict[str, str],
    postgres_db: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = Path(project["DAGSTER_HOME"])
    (home / "dagster.yaml").write_text((ROOT / "dagster.postgres.yaml").read_text())
    env = {
        **project,
        "CRUCIBLE_PG_HOST": PG["host"],
        "CRUCIBLE_PG_PORT": str(PG["port"]),
        "CRUCIBLE_PG_USER": PG["user"],
        "CRUCIBLE_PG_PASSWORD": os.environ.get("CRUCIBLE_PG_PASSWORD", ""),
        "CRUCIBLE_PG_DB": postgres_db,
    }
    for key, value in env.items():
        if key.startswith("CRUCIBLE_PG_"):
            monkeypatch.setenv(key, value)  # this process reads the instance back too
    _run_concurrently(env)


def test_a_value_that_cannot_cross_ops_fails_run_and_manifest_alike(artifacts_dir: Path) -> None:
    from crucible_dagster import Experiment
    from crucible_dagster.dagster_plugin import CrucibleContextIOManager, build_job

    experiment = Experiment.model_validate(
        {
            "id": "unstorable",
            "pipeline": [
                {"name": "bad", "module": "tests.hostile.hostile_modules:AssignsUnstorable"},
                {"name": "validate"},
            ],
        }
    )
    io_manager = CrucibleContextIOManager(base_dir=str(artifacts_dir.parent / "io"))
    with instance_for_test() as instance:
        result = build_job(experiment, io_manager=io_manager).execute_in_process(
            instance=instance, raise_on_error=False
        )
        assert not result.success
        stored = instance.get_run_by_id(result.run_id)
        assert stored is not None and stored.status == dg.DagsterRunStatus.FAILURE
    manifest = json.loads(
        (artifacts_dir / "unstorable" / result.run_id / "manifest.json").read_text()
    )
    assert manifest["status"] == "failed"
    assert manifest["failure"]["error_type"] == "UnstorableValue"
