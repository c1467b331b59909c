"""Sweeps on real Celery workers: RabbitMQ on 127.0.0.1:5672, the instance on PostgreSQL.

Two workers are started with the project's own command, the sweep runs through
``dagster job execute``, and its comparison is checked number for number against the same
sweep run in one process. One test kills a worker mid-trial: the broker hands the step to
the other worker (late acknowledgement) and the sweep still completes with the same numbers.
Without a broker these tests skip (under CI they fail), saying what to start.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from crucible_dagster.dagster_plugin import build_job
from crucible_dagster.dagster_plugin.celery.workers import running_workers
from crucible_dagster.experiment.loading import load_experiment
from tests.conftest import ROOT, subprocess_env
from tests.integration.test_postgres import postgres_db, postgres_home

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
__all__ = ["postgres_db"]  # the fixture, used by name

BROKER = ("127.0.0.1", 5672)
TRIALS_PER_WORKER_BEFORE_KILL = 2


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
    migrate = Path(sys.executable).with_name("dagster")
    subprocess.run([str(migrate), "instance", "migrate"], env=env, check=True, capture_output=True)
    found = Deployment(env, experiments, artifacts, home / "celery_workers")
    yield found
    found.command("stop", "--timeout", "10")


def write_experiment(deployment: Deployment, data: dict[str, Any]) -> Path:
    path = deployment.experiments / f"{data['id']}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def in_process_report(path: Path, tmp_path: Path) -> dict[str, Any]:
    """The same sweep in one process: the numbers the distributed run must equal."""
    experiment = load_experiment(path).model_copy(update={"executor": "in_process"})
    result = build_job(experiment).execute_in_process()
    assert result.success
    (report,) = (tmp_path / "artifacts").glob(f"{experiment.id}/{result.run_id}/sweep.json")
    return json.loads(report.read_text())


def wait(process: subprocess.Popen[str], timeout: float = 300) -> str:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, out[-4000:]
    return out


def test_sweep_on_two_celery_workers_equals_in_process(
    deployment: Deployment, tmp_path: Path
) -> None:
    path = write_experiment(deployment, sweep_yaml("celery_sweep", pause_s=0))
    deployment.start_workers(2)
    wait(deployment.execute("celery_sweep"))
    trials = deployment.trial_manifests("celery_sweep")
    assert len(trials) == 20 and {t["status"] for t in trials} == {"completed"}
    worker_pids = set(deployment.workers().values())
    ran_on = {(t["host"], t["pid"]) for t in trials}
    assert len(ran_on) >= 2, ran_on
    assert {pid for _, pid in ran_on} <= worker_pids  # the workers ran them, not the run process
    assert deployment.sweep_report("celery_sweep") == in_process_report(path, tmp_path)


def test_worker_killed_mid_trial_the_sweep_completes_with_the_same_numbers(
    deployment: Deployment, tmp_path: Path
) -> None:
    path = write_experiment(deployment, sweep_yaml("celery_kill", pause_s=0.4))
    workers = deployment.start_workers(2)
    victim_name, victim = sorted(workers.items())[0]
    run = deployment.execute("celery_kill")
    deadline = time.monotonic() + 120
    killed_in: str | None = None
    while killed_in is None and time.monotonic() < deadline and run.poll() is None:
        trials = deployment.trial_manifests("celery_kill")
        done_by_victim = [t for t in trials if t["pid"] == victim and t["status"] == "completed"]
        running = [t for t in trials if t["pid"] == victim and t["status"] == "running"]
        if len(done_by_victim) >= TRIALS_PER_WORKER_BEFORE_KILL and running:
            os.kill(victim, signal.SIGKILL)  # mid-trial: its manifest says running
            killed_in = running[0]["dir"]
        time.sleep(0.05)
    assert killed_in is not None, "the victim worker never ran a trial while the sweep ran"
    wait(run)
    by_dir = {t["dir"]: t for t in deployment.trial_manifests("celery_kill")}
    assert by_dir[killed_in]["status"] == "interrupted"  # ended, kept, never overwritten
    assert by_dir[killed_in]["failure"]["error_type"] == "WorkerLost"
    retried = by_dir[f"{killed_in}.attempt2"]
    assert retried["status"] == "completed" and retried["pid"] != victim
    completed = [t for t in by_dir.values() if t["status"] == "completed"]
    assert len(completed) == 20
    assert victim_name not in deployment.workers()
    assert deployment.sweep_report("celery_kill") == in_process_report(path, tmp_path)
