"""What `executor: celery`, the default executor, trial pools and trial attempts compile to.

No broker is needed here: these check the definitions and the trial bookkeeping; the runs on
real workers are in test_celery.py.
"""

from __future__ import annotations

import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import dagster as dg
import pytest

from crucible_dagster import Experiment
from crucible_dagster.dagster_plugin import CrucibleExperimentsComponent, build_job
from crucible_dagster.dagster_plugin.celery.settings import RELIABILITY_SETTINGS, CelerySettings
from crucible_dagster.dagster_plugin.definitions import (
    default_executor_from_env,
    definitions_from_folder,
)
from crucible_dagster.runtime.run_record import RunRecord, read_manifest
from crucible_dagster.sweeps.grid import Trial
from crucible_dagster.sweeps.running import (
    completed_attempt,
    next_attempt_dir,
    trial_attempt_dirs,
    trial_run_dir,
)
from tests.conftest import ROOT, subprocess_env
from tests.dagster_helpers import instance_at
from tests.integration.events import sweep_graph
from tests.services import postgres_db, postgres_home

__all__ = ["postgres_db"]  # the fixture, used by name

SWEEP = {
    "id": "pooled",
    "parameters": {"level": [0.8, 0.9]},
    "sweep": {"metric": "fold_scores.model", "pool": "gpu_trials"},
    "pipeline": [{"name": "score", "module": "tests.helpers:NoisyScore"}],
}


def test_celery_executor_takes_broker_backend_and_queue_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRUCIBLE_CELERY_BROKER", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("CRUCIBLE_CELERY_BACKEND", "redis://127.0.0.1:6379/1")
    monkeypatch.setenv("CRUCIBLE_CELERY_QUEUE", "team_a")
    job = build_job(Experiment.model_validate({**SWEEP, "executor": "celery"}))
    assert job.executor_def.name == "celery"
    config = CelerySettings.from_env().executor_config()
    assert config["broker"] == "redis://127.0.0.1:6379/0"
    assert config["backend"] == "redis://127.0.0.1:6379/1"
    assert config["config_source"]["task_default_queue"] == "team_a"
    assert config["config_source"]["task_acks_late"] is True
    assert RELIABILITY_SETTINGS["task_reject_on_worker_lost"] is True


def test_defaults_are_rabbitmq_and_rpc(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CRUCIBLE_CELERY_BROKER", "CRUCIBLE_CELERY_BACKEND", "CRUCIBLE_CELERY_QUEUE"):
        monkeypatch.delenv(name, raising=False)
    settings = CelerySettings.from_env()
    assert settings.broker == "pyamqp://guest:guest@127.0.0.1:5672//"
    assert (settings.backend, settings.queue) == ("rpc://", "dagster")


def test_trial_steps_are_in_the_experiments_pool() -> None:
    job = build_job(Experiment.model_validate(SWEEP))
    assert sweep_graph(job).node_named("run_trial").definition.pools == {"gpu_trials"}
    default = build_job(Experiment.model_validate({**SWEEP, "sweep": {"metric": "m"}}))
    assert sweep_graph(default).node_named("run_trial").definition.pools == {"crucible_trials"}


def test_default_executor_applies_only_where_the_file_names_none(tmp_path: Path) -> None:
    (tmp_path / "plain.yaml").write_text("id: plain\npipeline: [{name: validate}]\n")
    (tmp_path / "own.yaml").write_text(
        "id: own\nexecutor: multiprocess\npipeline: [{name: validate}]\n"
    )
    defs = definitions_from_folder(tmp_path, default_executor="celery")
    assert defs.resolve_job_def("plain").executor_def.name == "celery"
    assert defs.resolve_job_def("own").executor_def.name == "multiprocess"
    component = CrucibleExperimentsComponent(path=str(tmp_path), executor="celery")
    assert dg.build_defs_for_component(component).resolve_job_def("plain").executor_def.name == (
        "celery"
    )


def test_executor_from_the_environment_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRUCIBLE_EXECUTOR", "celery")
    assert default_executor_from_env() == "celery"
    monkeypatch.setenv("CRUCIBLE_EXECUTOR", "celey")
    with pytest.raises(
        ValueError, match=r"CRUCIBLE_EXECUTOR: expected one of .*celery, found 'celey'"
    ):
        default_executor_from_env()
    monkeypatch.delenv("CRUCIBLE_EXECUTOR")
    assert default_executor_from_env() is None


def test_a_redelivered_trial_ends_the_dead_attempt_and_writes_beside_it(tmp_path: Path) -> None:
    experiment = Experiment.model_validate(SWEEP)
    trial = Trial("level_0_8__seed_1", {"level": 0.8}, 1)
    first = trial_run_dir(tmp_path, trial)
    RunRecord.create(first, experiment, run_id="r.level_0_8__seed_1")  # a worker died in it
    assert completed_attempt([tmp_path], trial) is None
    second = next_attempt_dir(tmp_path, trial)
    assert second == tmp_path / "trials" / "level_0_8__seed_1.attempt2"
    dead = read_manifest(first)
    assert dead["status"] == "interrupted" and dead["failure"]["error_type"] == "WorkerLost"
    record = RunRecord.create(second, experiment, run_id="r.level_0_8__seed_1")
    record.finish("completed", metrics={"score": 0.8})
    assert trial_attempt_dirs(tmp_path, trial) == [first, second]
    # a step delivered again after its trial completed takes the completed attempt's numbers
    again = completed_attempt([tmp_path], trial)
    assert again is not None and again.metrics == {"score": 0.8}
    assert again.run_dir == str(second) and again.worker is not None
    assert again.worker["pid"] == read_manifest(second)["pid"]


POOLED_RUN = """
import dagster as dg
from tests.integration import jobs

overrides = {"concurrency": {"pools": {"default_limit": 1}}}
with dg.instance_for_test(overrides=overrides) as instance:
    with dg.execute_job(dg.reconstructable(jobs.pooled_sweep_job), instance=instance) as result:
        assert result.success
"""


def test_a_pool_limit_runs_trial_steps_one_at_a_time(artifacts_dir: Path) -> None:
    # In a process of its own: the multiprocess executor's forkserver keeps the environment it
    # started with, which would leak this test's artifacts folder into later tests' jobs.
    done = subprocess.run(
        [sys.executable, "-c", POOLED_RUN],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    spans = sorted(
        (m["started_at"], m["ended_at"])
        for m in (
            read_manifest(p.parent)
            for p in artifacts_dir.glob("pooled_sweep/*/trials/*/manifest.json")
        )
    )
    assert len(spans) == 4
    assert all(ended <= next_start for (_, ended), (next_start, _) in pairwise(spans))


def test_the_shipped_queued_instance_config_loads(
    postgres_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = postgres_home(postgres_db, tmp_path, monkeypatch)
    (home / "dagster.yaml").write_text((ROOT / "dagster.queued.yaml").read_text())
    with instance_at(home) as instance:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        config = instance.get_concurrency_config()
        assert config.pool_config.default_pool_limit == 4
        (limit,) = config.run_queue_config.tag_concurrency_limits
        assert limit["key"] == "crucible/experiment" and limit["limit"] == 1
