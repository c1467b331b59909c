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
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from crucible_dagster.dagster_plugin import build_job
from crucible_dagster.experiment.loading import load_experiment
from tests.services import Deployment, broker, deployment, postgres_db, sweep_yaml, write_experiment

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
__all__ = ["broker", "deployment", "postgres_db"]  # fixtures, used by name

TRIALS_PER_WORKER_BEFORE_KILL = 2


def in_process_report(path: Path, tmp_path: Path) -> dict[str, Any]:
    """The same sweep in one process: the numbers the distributed run must equal. Its pauses
    (there to give a kill its moment) are cut to nothing: they change no number, and 20 of them
    were 8 s of an idle machine."""
    experiment = load_experiment(path)
    pipeline = [
        stage.model_copy(update={"options": {"seconds": 0}}) if stage.name == "pause" else stage
        for stage in experiment.pipeline
    ]
    experiment = experiment.model_copy(update={"executor": "in_process", "pipeline": pipeline})
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
