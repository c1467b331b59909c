"""Feedback events from a real PostgreSQL table (issue 29): the rows read through a server-side
cursor, a bad row located by its number, the row cap, a table that does not exist."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crucible_dagster.experiment.ir import Feedback, PostgresSource
from crucible_dagster.feedback.ingest import ingest
from crucible_dagster.feedback.sources import FeedbackSourceError, read_records
from tests.services import PG, connect, postgres_db

__all__ = ["postgres_db"]
pytestmark = pytest.mark.postgres


def _dsn(db: str) -> str:
    return f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{db}"


def _table(db: str) -> None:
    with connect(db) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE SCHEMA app; CREATE TABLE app.feedback (id text, feedback_type text, "
            "feedback_value jsonb, model_version text, input text, user_id text, "
            "latency_ms numeric, timestamp timestamptz, metadata jsonb)"
        )
        rows = [
            ("1", "thumbs", "true", "v1", "hi from ana@example.org", "ana", 12.5,
             "2026-12-01T10:00:00Z", '{"app": "web"}'),
            ("2", "rating", "4", "v1", "q", None, None, "2026-12-01T11:00:00Z", None),
            (None, "rating", "5", "v1", "q", None, None, None, None),  # row 3: no id
            ("4", "rating", '"great"', "v1", "q", None, None, None, None),  # row 4: not a number
        ]  # fmt: skip
        cur.executemany("INSERT INTO app.feedback VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)", rows)


def test_events_from_a_table_are_validated_row_by_row(postgres_db: str, tmp_path: Path) -> None:
    _table(postgres_db)
    settings = Feedback(source=PostgresSource(table="app.feedback", dsn=_dsn(postgres_db)))
    found = ingest(read_records(settings), settings, seed=0)
    assert found.counts["read"] == 4 and found.counts["kept"] == 2
    assert [(e["where"], e["field"]) for e in found.errors] == [
        ("table app.feedback row 3", "id"), ("table app.feedback row 4", "feedback_value")]  # fmt: skip
    first = found.events[0]
    assert first["input"] == "hi from [REDACTED:email]" and first["latency_ms"] == 12.5
    assert first["day"] == "2026-12-01" and json.loads(first["metadata"]) == {"app": "web"}


def test_the_row_cap_and_a_missing_table_are_one_line(postgres_db: str) -> None:
    _table(postgres_db)
    capped = Feedback(
        source=PostgresSource(table="app.feedback", dsn=_dsn(postgres_db)), max_records=3
    )
    with pytest.raises(
        FeedbackSourceError,
        match=r"expected at most 3 records \(reliability.feedback.max_records\), found 4 rows",
    ):
        list(read_records(capped))
    missing = Feedback(source=PostgresSource(table="nowhere", dsn=_dsn(postgres_db)))
    with pytest.raises(FeedbackSourceError) as raised:
        list(read_records(missing))
    assert str(raised.value) == (
        "reliability.feedback.source.table 'nowhere': relation \"nowhere\" does not exist"
    )


def test_only_the_events_columns_are_read_and_a_slow_query_meets_its_deadline(
    postgres_db: str,
) -> None:
    """Found by an outsider: a table's other columns (a password) were read and quoted in every
    row's error, an integer key was refused as an id, and a slow view ran unbounded."""
    with connect(postgres_db) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE users_feedback (id bigserial, feedback_value jsonb, password text);"
            "INSERT INTO users_feedback (feedback_value, password) VALUES ('true', 'hunter2');"
            "CREATE VIEW slow AS SELECT id, feedback_value FROM users_feedback "
            "WHERE pg_sleep(3) IS NOT NULL"
        )
    settings = Feedback(source=PostgresSource(table="users_feedback", dsn=_dsn(postgres_db)))
    found = ingest(read_records(settings), settings, seed=0)
    assert found.counts["kept"] == 1 and found.errors == []
    assert found.events[0]["id"] == "1" and "hunter2" not in json.dumps(found.events)
    slow = Feedback(source=PostgresSource(table="slow", dsn=_dsn(postgres_db), timeout_s=0.5))
    with pytest.raises(FeedbackSourceError, match="canceling statement due to statement timeout"):
        list(read_records(slow))
