"""The services integration tests share: a PostgreSQL database per test, a RabbitMQ broker,
and a Celery deployment (instance, queue, workers) on them.

Apart from the test modules so that a unit test (the workers' hostile family) can use these
fixtures without importing those modules, and Dagster with them. Each fixture skips when its
service is unreachable, and fails under CI.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from crucible_dagster.dagster_plugin.celery.workers import running_workers
from tests.conftest import ROOT, subprocess_env

# --- PostgreSQL -----------------------------------------------------------------------------

PG: dict[str, Any] = {
    "host": os.environ.get("CRUCIBLE_PG_HOST", "127.0.0.1"),
    "port": int(os.environ.get("CRUCIBLE_PG_PORT", "5432")),
    "user": os.environ.get("CRUCIBLE_PG_USER", "postgres"),
}


def connect(dbname: str = "postgres"):
    import psycopg2

    return psycopg2.connect(
        dbname=dbname, connect_timeout=3, password=os.environ.get("CRUCIBLE_PG_PASSWORD", ""), **PG
    )


@pytest.fixture
def postgres_db() -> Iterator[str]:
    try:
        conn = connect()
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL must be reachable under CI: {exc}")
        pytest.skip(f"PostgreSQL not reachable on {PG['host']}:{PG['port']}: {exc}")
    # one fresh database per test (an instance's tables start empty), named after the xdist
    # worker so a database left by a killed run says whose it was
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"crucible_test_{worker}_{uuid.uuid4().hex[:10]}"
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


def postgres_home(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME with the shipped dagster.postgres.yaml, its connection from the environment."""
    monkeypatch.setenv("CRUCIBLE_PG_HOST", PG["host"])
    monkeypatch.setenv("CRUCIBLE_PG_PORT", str(PG["port"]))
    monkeypatch.setenv("CRUCIBLE_PG_USER", PG["user"])
    monkeypatch.setenv("CRUCIBLE_PG_PASSWORD", os.environ.get("CRUCIBLE_PG_PASSWORD", ""))
    monkeypatch.setenv("CRUCIBLE_PG_DB", db)
    home = tmp_path / "home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text((ROOT / "dagster.postgres.yaml").read_text())
    return home


# --- RabbitMQ and a Celery deployment on it -------------------------------------------------

BROKER = ("127.0.0.1", 5672)


def _broker_reachable() -> str | None:
    try:
        with socket.create_connection(BROKER, timeout=2):
            return None
    except OSError as exc:
        return str(exc)


@pytest.fixture
def broker() -> None:
    problem = _broker_reachable()
    if problem is None:
        return
    message = (
        f"RabbitMQ is not reachable on {BROKER[0]}:{BROKER[1]} ({problem}): start it "
        "(Debian: `apt-get install rabbitmq-server && service rabbitmq-server start`), or point "
        "CRUCIBLE_CELERY_BROKER at a running broker"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def sweep_yaml(experiment_id: str, pause_s: float) -> dict[str, Any]:
    """20 trials (4 configurations x 5 seeds), one a step, so any worker can take any trial."""
    pipeline: list[dict[str, Any]] = [
        {
            "name": "score",
            "module": "tests.helpers:NoisyScore",
            "options": {"level": "${params.level}"},
        }
    ]
    if pause_s:
        pipeline.append(
            {"name": "pause", "module": "tests.helpers:Sleep", "options": {"seconds": pause_s}}
        )
    return {
        "id": experiment_id,
        "executor": "celery",
        "parameters": {"level": [0.80, 0.84, 0.88, 0.92]},
        "seeds": [1, 2, 3, 4, 5],
        "sweep": {"metric": "fold_scores.model", "trials_per_step": 1},
        "pipeline": pipeline,
    }


@dataclass
class Deployment:
    """One instance, one broker queue, one artifacts root, and the workers serving them."""

    env: dict[str, str]
    experiments: Path
    artifacts: Path
    state: Path

    def workers(self) -> dict[str, int]:
        return running_workers(self.state)

    def start_workers(self, count: int) -> dict[str, int]:
        """``count`` workers started with the project's command, ready on the broker."""
        started = self.command("start", "-n", str(count))
        assert started.returncode == 0, started.stdout + started.stderr
        workers = self.workers()
        assert len(workers) == count
        return workers

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "crucible_dagster.dagster_plugin.celery.workers", *args],
            env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    def execute(self, job: str) -> subprocess.Popen[str]:
        dagster = Path(sys.executable).with_name("dagster")
        return subprocess.Popen(
            [str(dagster), "job", "execute", "-f", str(ROOT / "definitions.py"), "-j", job],
            env=self.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

    def trial_manifests(self, experiment_id: str) -> list[dict[str, Any]]:
        found = []
        for path in sorted(self.artifacts.glob(f"{experiment_id}/*/trials/*/manifest.json")):
            try:
                found.append({**json.loads(path.read_text()), "dir": path.parent.name})
            except (OSError, json.JSONDecodeError):
                continue  # being replaced this moment
        return found

    def sweep_report(self, experiment_id: str) -> dict[str, Any]:
        (path,) = self.artifacts.glob(f"{experiment_id}/*/sweep.json")
        return json.loads(path.read_text())


@pytest.fixture
def deployment(
    broker: None, postgres_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Deployment]:
    home = postgres_home(postgres_db, tmp_path, monkeypatch)
    experiments = tmp_path / "experiments"
    experiments.mkdir()
    artifacts = tmp_path / "artifacts"
    env = subprocess_env(
        DAGSTER_HOME=str(home),
        CRUCIBLE_EXPERIMENTS_DIR=str(experiments),
        CRUCIBLE_ARTIFACTS_DIR=str(artifacts),
        CRUCIBLE_TEST_WORKDIR=str(tmp_path),
        # a queue of this test's own: no other worker on the broker takes its steps
        CRUCIBLE_CELERY_QUEUE=f"crucible_test_{uuid.uuid4().hex[:8]}",
    )
    for name in ("CRUCIBLE_PG_HOST", "CRUCIBLE_PG_PORT", "CRUCIBLE_PG_USER", "CRUCIBLE_PG_DB"):
        env[name] = os.environ[name]
    from tests.dagster_helpers import NO_LOG_CAPTURE, migrate_instance  # Dagster only here

    with (home / "dagster.yaml").open("a") as settings:  # each step's capture is 4 processes
        settings.write(yaml.safe_dump(NO_LOG_CAPTURE))
    migrate_instance(home)  # its CRUCIBLE_PG_* set by postgres_home
    found = Deployment(env, experiments, artifacts, home / "celery_workers")
    yield found
    found.command("stop", "--timeout", "10")


def write_experiment(deployment: Deployment, data: dict[str, Any]) -> Path:
    path = deployment.experiments / f"{data['id']}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path
