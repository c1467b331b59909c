"""An Optuna study on real Celery workers (RabbitMQ on 127.0.0.1:5672, the instance on
PostgreSQL): a step per trial, taken by either worker, every worker on one study in a
PostgreSQL database of its own (``sweep.optuna.storage_env``). Without a broker it skips (under
CI it fails)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.test_celery import wait
from tests.services import PG, Deployment, broker, connect, deployment, postgres_db

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
__all__ = ["broker", "deployment", "postgres_db"]  # fixtures, used by name


@pytest.fixture
def study_database() -> Iterator[str]:
    """A database of the study's own: Optuna's tables (and its alembic_version) beside
    Dagster's would clash, so a study never shares the instance's database."""
    name = f"crucible_optuna_{uuid.uuid4().hex[:10]}"
    conn = connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


def test_a_studys_trials_spread_over_two_workers_sharing_one_study(
    deployment: Deployment, study_database: str
) -> None:
    optuna = pytest.importorskip("optuna")
    url = f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{study_database}"
    deployment.env["CRUCIBLE_TEST_OPTUNA_STORAGE"] = url  # the workers read it too
    data = {
        "id": "celery_study",
        "seed": 5,
        "seeds": [1, 2],
        "dagster": {"executor": "celery"},
        "sweep": {
            "metric": "score",
            "per_sample": False,
            "strategy": "optuna",
            "trials_per_step": 1,  # a step per trial: any worker
            "optuna": {
                "n_trials": 6,
                "sampler": "random",
                "storage_env": "CRUCIBLE_TEST_OPTUNA_STORAGE",
                "search_space": [{"name": "x", "kind": "float", "low": -5, "high": 5}],
            },
        },
        "pipeline": [
            {"name": "q", "module": "tests.helpers:Quadratic", "options": {"x": "${params.x}"}},
            {"name": "pause", "module": "tests.helpers:Sleep", "options": {"seconds": 0.3}},
        ],
    }
    path = deployment.experiments / "celery_study.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    deployment.start_workers(2)
    wait(deployment.execute("celery_study"), timeout=600)

    (run_dir,) = [p for p in (deployment.artifacts / "celery_study").iterdir() if p.is_dir()]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert not (run_dir / "optuna.db").exists()  # the study is in the shared database
    study = manifest["metrics"]["sweep"]["study"]
    assert study["complete"] == 6 and study["storage"] == "$CRUCIBLE_TEST_OPTUNA_STORAGE"
    stored = optuna.load_study(study_name=study["study_name"], storage=url)
    assert sorted(t.number for t in stored.trials) == list(range(6))  # one study, six trials
    assert len({json.dumps(t.params) for t in stored.trials}) == 6  # no point drawn twice
    trials = deployment.trial_manifests("celery_study")
    assert len(trials) == 12 and {t["status"] for t in trials} == {"completed"}
    workers = set(deployment.workers().values())
    pids = {t["pid"] for t in trials}
    assert pids <= workers and len(pids) == 2, (pids, workers)  # both workers, never the run
    assert Path(run_dir / "sweep.md").read_text().count("trial\\_00") >= 6
