"""The same job on a Postgres-backed instance (127.0.0.1:5432). Skips only when unreachable and CI is unset."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef

from tests.conftest import ROOT
from tests.integration import jobs

pytestmark = [pytest.mark.postgres]


PG: dict[str, Any] = {
    "host": os.environ.get("CRUCIBLE_PG_HOST", "127.0.0.1"),
    "port": int(os.environ.get("CRUCIBLE_PG_PORT", "5432")),
    "user": os.environ.get("CRUCIBLE_PG_USER", "postgres"),
}


def _connect(dbname: str = "postgres"):
    import psycopg2

    return psycopg2.connect(
        dbname=dbname, connect_timeout=3, password=os.environ.get("CRUCIBLE_PG_PASSWORD", ""), **PG
    )


@pytest.fixture
def postgres_db() -> Iterator[str]:
    try:
        conn = _connect()
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


def test_job_on_postgres_instance(
    postgres_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = postgres_home(postgres_db, tmp_path, monkeypatch)
    monkeypatch.setenv("CRUCIBLE_TEST_WORKDIR", str(tmp_path))
    config = yaml.safe_load((ROOT / "dagster.postgres.yaml").read_text())
    assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        with dg.execute_job(dg.reconstructable(jobs.counting_job), instance=instance) as result:
            assert result.success
            run_id = result.run_id
        stored = instance.get_run_by_id(run_id)
        assert stored is not None and stored.status == dg.DagsterRunStatus.SUCCESS
        records = instance.get_records_for_run(run_id).records
        outputs = [
            r.event_log_entry.dagster_event
            for r in records
            if r.event_log_entry.dagster_event is not None
            and r.event_log_entry.dagster_event.event_type == dg.DagsterEventType.STEP_OUTPUT
        ]
        metadata = outputs[-1].step_output_data.metadata
        assert metadata["crucible/stage"].value == "fourth"
        assert metadata["crucible/duration_ms"].value >= 0
    with _connect(postgres_db) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from runs")
        assert cur.fetchone()[0] == 1
