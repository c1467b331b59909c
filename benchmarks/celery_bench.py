"""Issue 15 figures: a light sweep trial under in-process, multiprocess and Celery executors, and
the throughput of two Celery workers over one on a CPU-bound sweep.

Every side runs the same sweep, one trial a step (``trials_per_step: 1`` on all sides, so the
executors differ and nothing else), through ``dagster.execute_job`` on one PostgreSQL instance,
with Dagster's default logging. Two solo-pool workers serve the Celery runs: worker 1 listens
on the "one" and "two" queues, worker 2 on "two" only, so a run sent to "one" has one worker
and a run sent to "two" has both, and the sides can alternate without restarting workers.
Needs RabbitMQ on 127.0.0.1:5672 and PostgreSQL on 127.0.0.1:5432; without them it says so.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import dagster as dg
from dagster._core.instance.ref import InstanceRef

from benchmarks.harness import Row, Timing, paired
from crucible_dagster import Experiment
from crucible_dagster.dagster_plugin import build_job
from crucible_dagster.dagster_plugin.celery.settings import CelerySettings
from crucible_dagster.dagster_plugin.celery.workers import (
    start_worker,
    stop_workers,
    wait_until_ready,
)

ROOT = Path(__file__).resolve().parent.parent
QUEUE_ENV = "CRUCIBLE_BENCH_QUEUE"
LIGHT_TRIALS = 20
CPU_TRIALS = 12
CPU_WORK = 5_000_000  # about 1 s of one core per trial here


def _sweep(
    experiment_id: str, stage: Mapping[str, object], levels: list[float], seeds: int
) -> dict[str, object]:
    return {
        "id": experiment_id,
        "parameters": {"level": levels},
        "seeds": list(range(1, seeds + 1)),
        "sweep": {"metric": "score", "trials_per_step": 1},
        "pipeline": [stage],
    }


def light_experiment(executor: str) -> Experiment:
    stage = {
        "name": "score",
        "module": "benchmarks.stages:LightScore",
        "options": {"level": "${params.level}"},
    }
    data = _sweep("bench_light_sweep", stage, [0.5, 0.6, 0.7, 0.8], LIGHT_TRIALS // 4)
    return Experiment.model_validate({**data, "dagster": {"executor": executor}})


def cpu_experiment() -> Experiment:
    stage = {
        "name": "score",
        "module": "benchmarks.stages:CpuScore",
        "options": {"level": "${params.level}", "work": CPU_WORK},
    }
    data = _sweep("bench_cpu_sweep", stage, [0.5, 0.6, 0.7, 0.8], CPU_TRIALS // 4)  # 4 x 3
    return Experiment.model_validate({**data, "dagster": {"executor": "celery"}})


def _on_queue(job: dg.JobDefinition, suffix: str) -> dg.JobDefinition:
    settings = replace(CelerySettings.from_env(), queue=f"{os.environ[QUEUE_ENV]}_{suffix}")
    # the executor users get: dagster_celery's, which first checks a worker consumes the queue
    from crucible_dagster.dagster_plugin.celery.app import celery_executor

    return job.with_executor_def(
        celery_executor.configured(settings.executor_config(), name="celery")
    )


# Module-level builders: the multiprocess children and the Celery workers rebuild the job from these.
def light_in_process() -> dg.JobDefinition:
    return build_job(light_experiment("in_process"))


def light_multiprocess() -> dg.JobDefinition:
    return build_job(light_experiment("multiprocess"))


def light_celery() -> dg.JobDefinition:
    return _on_queue(build_job(light_experiment("celery")), "two")


def cpu_one_worker() -> dg.JobDefinition:
    return _on_queue(build_job(cpu_experiment()), "one")


def cpu_two_workers() -> dg.JobDefinition:
    return _on_queue(build_job(cpu_experiment()), "two")


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _postgres_instance(home: Path) -> Iterator[dg.DagsterInstance]:
    import psycopg2

    name = f"crucible_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(dbname="postgres", host="127.0.0.1", port=5432, user="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    os.environ.update(
        CRUCIBLE_PG_HOST="127.0.0.1",
        CRUCIBLE_PG_PORT="5432",
        CRUCIBLE_PG_USER="postgres",
        CRUCIBLE_PG_PASSWORD="",
        CRUCIBLE_PG_DB=name,
    )
    (home / "dagster.yaml").write_text((ROOT / "dagster.postgres.yaml").read_text())
    try:
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            yield instance
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextlib.contextmanager
def _workers(state: Path) -> Iterator[None]:
    queue = os.environ[QUEUE_ENV]
    started = [
        start_worker(state, 1, queue=f"{queue}_one,{queue}_two"),
        start_worker(state, 2, queue=f"{queue}_two"),
    ]
    try:
        ready, problems = wait_until_ready(state, started, timeout=60)
        if len(ready) < 2:
            raise RuntimeError(f"only {len(ready)} of two Celery workers answered: {problems}")
        yield
    finally:
        stop_workers(state, timeout=20)


def celery_rows() -> list[Row]:
    if not (_reachable(5672) and _reachable(5432)):
        print("skipped: needs RabbitMQ on 127.0.0.1:5672 and PostgreSQL on 127.0.0.1:5432")
        return []
    print(
        f"settings: PostgreSQL instance, {LIGHT_TRIALS}- and {CPU_TRIALS}-trial sweeps with "
        "trials_per_step=1 on every side, dagster.execute_job for every side, two solo-pool "
        "Celery workers on RabbitMQ (rpc:// results), default logging"
    )
    os.environ[QUEUE_ENV] = f"crucible_bench_{uuid.uuid4().hex[:8]}"
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )
    with (
        tempfile.TemporaryDirectory() as home,
        _postgres_instance(Path(home)) as instance,
        _workers(Path(home) / "workers"),
    ):

        def runner(builder: Callable[[], dg.JobDefinition]) -> Callable[[], None]:
            def run() -> None:
                job = dg.reconstructable(builder)
                with dg.execute_job(job, instance=instance) as result:
                    assert result.success, f"{builder} failed"

            return run

        celery, in_process, busy_c = paired(
            runner(light_celery), runner(light_in_process), repeats=5
        )
        multi, in_process_m, busy_m = paired(
            runner(light_multiprocess), runner(light_in_process), repeats=5
        )
        # the workers imported this module during the light runs: no warm-up run needed
        one, two, busy_t = paired(
            runner(cpu_one_worker), runner(cpu_two_workers), repeats=5, warmup=0
        )

    def per_trial(timing: Timing, n: int) -> Timing:
        return Timing([w / n for w in timing.wall], [c / n for c in timing.cpu])

    n = LIGHT_TRIALS
    fixed = "a run's fixed cost (plan, compare, the executor's 1 s polling tick) is spread over the trials"
    return [
        Row(
            f"light trial, Celery (2 workers), per trial of {n}",
            per_trial(celery, n),
            per_trial(in_process, n),
            "the same sweep in-process",
            "-",
            busy_c,
            note=fixed,
        ),
        Row(
            f"light trial, multiprocess, per trial of {n}",
            per_trial(multi, n),
            per_trial(in_process_m, n),
            "the same sweep in-process",
            "-",
            busy_m,
            note="a process per step (forkserver); 2 at a time on 2 cores",
        ),
        Row(
            f"CPU-bound sweep ({CPU_TRIALS} trials), 1 worker over 2",
            one,
            two,
            "the same sweep on 2 workers",
            ">1x",
            busy_t,
            note="the ratio is 2 workers' throughput over 1 worker's; both workers share this "
            "machine's 2 cores with the run's own process",
        ),
    ]
