"""The same job on a Postgres-backed instance (127.0.0.1:5432). Skips only when unreachable and CI is unset."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from tests.conftest import ROOT
from tests.dagster_helpers import instance_at
from tests.integration import jobs
from tests.services import connect, postgres_db, postgres_home

pytestmark = [pytest.mark.postgres]
__all__ = ["postgres_db"]  # the fixture, used by name


def test_job_on_postgres_instance(
    postgres_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = postgres_home(postgres_db, tmp_path, monkeypatch)
    monkeypatch.setenv("CRUCIBLE_TEST_WORKDIR", str(tmp_path))
    config = yaml.safe_load((ROOT / "dagster.postgres.yaml").read_text())
    assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    with instance_at(home) as instance:
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
    with connect(postgres_db) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from runs")
        assert cur.fetchone()[0] == 1
