"""Hostile family of the feedback source (issue 29): a file we read, a table we query, a URL.

A bad record is that record's located error, the good ones beside it are kept; a source that
cannot be read fails the stage with one line naming it; the run ends failed, writes only in its
own directory, and no personal data reaches a file it writes.
"""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from crucible_dagster.experiment.ir import Feedback
from crucible_dagster.feedback.ingest import ingest
from crucible_dagster.feedback.sources import FeedbackSourceError, read_records
from tests.hostile.conftest import Cli, snapshot

GOOD = json.dumps({"id": "ok", "feedback_type": "thumbs", "feedback_value": True})


def lines_of(path: Path, **settings: Any) -> Any:
    config = Feedback(source=str(path), **settings)
    return ingest(read_records(config), config, seed=0)


def one_bad_line(tmp_path: Path, bad: bytes, **settings: Any) -> dict[str, str]:
    """The one error of a file of a good line, ``bad``, and a good line; both good ones kept."""
    path = tmp_path / "events.jsonl"
    good = GOOD.encode()
    path.write_bytes(good + b"\n" + bad + b"\n" + good.replace(b'"ok"', b'"ok2"') + b"\n")
    found = lines_of(path, **settings)
    assert found.counts["kept"] == 2 and found.counts["invalid"] == 1, found.counts
    (error,) = found.errors
    assert error["where"] == f"{path}:2"
    return error


@pytest.mark.slow  # writes and reads back a line of 128 MiB or more
def test_a_huge_line_is_refused_without_being_held_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with path.open("wb") as handle:  # a good line, a line of 256 MiB, a good line
        handle.write(GOOD.encode() + b'\n{"id": "x", "input": "')
        chunk = b"a" * 2**20
        for _ in range(256):
            handle.write(chunk)
        handle.write(b'"}\n' + GOOD.replace('"ok"', '"ok2"').encode() + b"\n")
    tracemalloc.start()  # the peak of this read alone, whatever the process held before
    try:
        found = lines_of(path)
        grown_mib = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert found.counts["kept"] == 2 and found.errors == [
        {
            "where": f"{path}:2",
            "field": "",
            "problem": "expected a line of at most 1048576 bytes "
            "(reliability.feedback.max_line_bytes), found a longer one",
        }
    ]
    assert grown_mib < 16  # the 256 MiB line was skipped a chunk at a time


def test_json_nested_a_hundred_thousand_deep_is_refused_before_parsing(tmp_path: Path) -> None:
    error = one_bad_line(tmp_path, b"[" * 100_000 + b"]" * 100_000)
    assert error["problem"].startswith("expected JSON nested at most 32 deep")


def test_a_billion_laughs_style_line_of_repeated_references_is_only_its_bytes(
    tmp_path: Path,
) -> None:
    """JSON has no entities or aliases: a line expands to nothing more than it holds, and
    a line holding a lot is capped by its bytes."""
    laughs = json.dumps({"id": "lol", "metadata": {f"lol{i}": "lol" * 1000 for i in range(400)}})
    error = one_bad_line(tmp_path, laughs.encode(), max_line_bytes=1024)
    assert "found a longer one" in error["problem"]


@pytest.mark.parametrize(
    ("bad", "field", "problem"),
    [
        (b'{"feedback_type": "thumbs", "feedback_value": true}', "id", "required, found nothing"),
        (b'{"id": "", "feedback_value": true}', "id", "expected a non-blank id, found ''"),
        (b'{"id": "   ", "feedback_value": true}', "id", "expected a non-blank id"),
        (b'{"id": 7.5, "feedback_value": true}', "id", "found float 7.5"),
        (b'{"id": true, "feedback_value": true}', "id", "found bool true"),
        (b'{"id": "a", "feedback_value": "maybe"}', "feedback_value", "found str 'maybe'"),
        (
            b'{"id": "a", "feedback_type": "rating", "feedback_value": 1e999}',
            "feedback_value",
            "expected a finite number for a rating event, found float 'inf'",
        ),
        (b'{"id": "a", "feedback_value": true, "latency_ms": -1}', "latency_ms", "found int -1"),
        (b'{"id": "a", "feedback_value": true, "metadata": [1]}', "metadata", "found list [1]"),
        (
            b'{"id": "a", "feedback_value": true, "timestamp": "yesterday"}',
            "timestamp",
            'found str "yesterday"',
        ),
        (
            b'{"id": "a", "feedback_value": true, "colour": "hunter2"}',
            "colour",
            "unknown field; expected the event's: id, feedback_type",
        ),
        (
            b'{"id": "a", "feedback_type": "vote", "feedback_value": true}',
            "feedback_type",
            'found str "vote"',
        ),
    ],
)
def test_wrong_types_and_missing_ids_name_their_field(
    tmp_path: Path, bad: bytes, field: str, problem: str
) -> None:
    error = one_bad_line(tmp_path, bad)
    assert error["field"] == field and problem in error["problem"], error


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (b'{"id": "a", "id": "b"}', "id: written twice in one record"),
        (b"\xff\xfe{}", "expected UTF-8 text, found byte 0xff"),
        (b"[1, 2]", "expected a JSON object, found list"),
        (b'{"id": "a"', "expected a JSON object, found invalid JSON"),
        (b'{"id": "a", "n": ' + b"9" * 5000 + b"}", "found an integer of more than 4300 digits"),
    ],
)
def test_lines_that_are_not_one_json_object_are_located(
    tmp_path: Path, bad: bytes, problem: str
) -> None:
    assert problem in one_bad_line(tmp_path, bad)["problem"]


@pytest.mark.parametrize(
    ("name", "make", "problem"),
    [
        ("events.jsonl", lambda p: p.write_bytes(b""), "the file is empty"),
        ("events.jsonl", lambda p: os.mkfifo(p), "a FIFO; only regular files are read"),
        ("events.jsonl", lambda p: None, "no such file or folder"),
        (
            "events.csv",
            lambda p: p.write_text("id,value\n1,2\n"),
            "expected a .jsonl, .ndjson, .json or .parquet file of feedback events, found '.csv'",
        ),
        (
            "events.parquet",
            lambda p: p.write_bytes(b"PAR1 not really"),
            "expected a Parquet file, found one pyarrow cannot read",
        ),
    ],
    ids=["empty", "fifo", "missing", "csv", "corrupt_parquet"],
)
def test_a_source_that_cannot_be_read_is_one_located_error(
    tmp_path: Path, name: str, make: Any, problem: str
) -> None:
    path = tmp_path / name
    make(path)
    with pytest.raises(FeedbackSourceError) as raised:
        list(read_records(Feedback(source=str(path))))
    message = str(raised.value)
    assert message.startswith(f"reliability.feedback.source: {path}: ") and problem in message


def test_a_directory_without_event_files_and_an_oversized_source(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FeedbackSourceError, match="names no data files"):
        list(read_records(Feedback(source=str(tmp_path / "empty"))))
    path = tmp_path / "events.jsonl"
    path.write_text(GOOD * 10 + "\n")
    with pytest.raises(
        FeedbackSourceError, match=r"bytes, over reliability\.feedback\.max_bytes \(16\)"
    ):
        list(read_records(Feedback(source=str(path), max_bytes=16)))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(GOOD + "\n")
    path.chmod(0)
    with pytest.raises(FeedbackSourceError, match="permission denied"):
        list(read_records(Feedback(source=str(path))))


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("http://169.254.169.254/latest/meta-data", "found the 'http' URL"),
        ("https://example.org/events.jsonl", "found the 'https' URL"),
        ("ftp://host/events.jsonl", "found the 'ftp' URL"),
        ("", "expected a path or URL of feedback events, found ''"),
        ({"table": "events; DROP TABLE runs"}, "expected a table name"),
        ({"table": "a.b.c"}, "expected a table name"),
        ({"table": "events", "dsn": "mysql://root@localhost/x"}, "expected a postgresql:// URL"),
        ({"table": "events", "dbname": "x"}, "Extra inputs"),
    ],
)
def test_a_source_outside_what_is_allowed_is_refused_by_the_ir(source: Any, problem: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as raised:
        Feedback(source=source)
    assert problem in str(raised.value)


def test_a_database_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    from crucible_dagster.experiment.ir import PostgresSource

    source = PostgresSource(table="events", dsn="postgresql://postgres@127.0.0.1:1/postgres")
    with pytest.raises(FeedbackSourceError) as raised:
        list(read_records(Feedback(source=source)))
    assert str(raised.value).startswith(
        "reliability.feedback.source.table 'events': cannot connect to PostgreSQL:"
    )


def test_relative_dotdot_and_absolute_paths_are_the_users_and_are_recorded(
    tmp_path: Path,
) -> None:
    """As for datasets: the experiment file's author names the file; each error says which."""
    outside = tmp_path / "outside.jsonl"
    outside.write_text(GOOD + "\n{bad\n")
    (tmp_path / "exp").mkdir()
    for source in (str(outside), str(tmp_path / "exp" / ".." / "outside.jsonl")):
        found = lines_of(Path(source))
        assert found.errors[0]["where"] == f"{source}:2"


def test_the_run_fails_with_one_line_writes_only_its_directory_and_no_pii(
    tmp_path: Path, cli: Cli, artifacts_dir: Path
) -> None:
    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "events.jsonl").write_text(
        json.dumps(
            {
                "id": "1",
                "feedback_value": True,
                "input": "I am ana@example.org",
                "user_id": "ana@example.org",
            }
        )
        + "\n"
        + json.dumps({"id": "2", "feedback_type": "rating", "feedback_value": "ana@example.org"})
        + "\n"
    )
    good = folder / "good.yaml"
    good.write_text("id: fb\nreliability: {feedback: {source: events.jsonl}}\n"
                    "pipeline: [{name: feedback}]\n")  # fmt: skip
    before = snapshot(folder)
    said = cli("run", str(good), "--run-id", "r1")
    assert said.code == 0, said.out + said.err
    run_dir = artifacts_dir / "fb" / "r1"
    written = b"".join(p.read_bytes() for p in run_dir.rglob("*") if p.is_file())
    assert (
        b"ana@example.org" not in written
    )  # nor in the bad record's error: its value is not copied
    assert snapshot(folder) == before
    assert [p.name for p in (artifacts_dir / "fb").iterdir()] == ["r1"]
    errors = [
        json.loads(line) for line in (run_dir / "feedback_errors.jsonl").read_text().splitlines()
    ]
    assert errors[0]["where"].endswith("events.jsonl:2")

    bad = folder / "bad.yaml"
    bad.write_text("id: fb\nreliability: {feedback: {source: nowhere.jsonl}}\n"
                   "pipeline: [{name: feedback}]\n")  # fmt: skip
    for command in ("validate", "run"):  # refused before the run: no run directory
        said = cli(command, str(bad), "--run-id", "r2") if command == "run" else cli(command, bad)
        assert said.code == 1
        assert (f"{bad}:2: reliability.feedback.source: no such file or folder: "
                f"'{folder}/nowhere.jsonl'") in said.text  # fmt: skip
    assert not (artifacts_dir / "fb" / "r2").exists()
    (folder / "empty.jsonl").write_bytes(b"")  # found at the run: the record ends failed
    bad.write_text(bad.read_text().replace("nowhere.jsonl", "empty.jsonl"))
    said = cli("run", str(bad), "--run-id", "r3")
    assert said.code == 1
    assert f"reliability.feedback.source: {folder}/empty.jsonl: the file is empty" in said.text
    manifest = json.loads((artifacts_dir / "fb" / "r3" / "manifest.json").read_text())
    assert manifest["status"] == "failed"


def test_a_small_parquet_of_millions_of_rows_is_refused_before_a_row_is_read(
    tmp_path: Path,
) -> None:
    """Found by an outsider: 10 MB of Parquet held 2 million rows, which took minutes and GBs
    to validate; its footer says how many before anything is read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "bomb.parquet"
    ids = pa.array([f"e{i}" for i in range(200_000)])
    pq.write_table(pa.table({"id": ids, "feedback_value": pa.array([True] * 200_000)}), path)
    settings = Feedback(source=str(path), max_records=100_000)
    records = read_records(settings)
    with pytest.raises(FeedbackSourceError) as raised:
        next(records)
    assert str(raised.value) == (
        f"reliability.feedback.source: {path}: expected at most 100000 records "
        f"(reliability.feedback.max_records), found 200000 rows in {path}"
    )


def test_json_lines_past_max_records_are_refused_at_the_first_one_over(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(GOOD.replace('"ok"', f'"e{i}"') + "\n" for i in range(6)))
    with pytest.raises(
        FeedbackSourceError, match=r"expected at most 5 records .* found more than 5"
    ):
        lines_of(path, max_records=5)
    assert lines_of(path, max_records=6).counts["kept"] == 6


def test_an_integer_id_is_an_id_and_a_huge_rating_one_bad_record(tmp_path: Path) -> None:
    """Found by an outsider: a rating of 400 digits crashed the whole run (float() overflows);
    a table's bigserial key was refused as an id."""
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"id": 5, "feedback_value": true}\n'
        + '{"id": "r", "feedback_type": "rating", "feedback_value": 1'
        + "0" * 400
        + "}\n"
    )
    found = lines_of(path)
    assert [e["id"] for e in found.events] == ["5"]
    (error,) = found.errors
    assert error["field"] == "feedback_value" and "expected a finite number" in error["problem"]


def test_identifiers_and_paths_are_redacted_too(tmp_path: Path) -> None:
    folder = tmp_path / "ana@example.org"
    folder.mkdir()
    path = folder / "events.jsonl"
    path.write_text(
        json.dumps({"id": "dave@example.com", "model_version": "erin@example.com",
                    "deployment_id": "555-867-5309", "feedback_value": True}) + "\n"
        + json.dumps({"id": "x", "feedback_value": True, "ivan@example.com": 1}) + "\n"
    )  # fmt: skip
    found = lines_of(path)
    written = json.dumps([found.events, found.errors])
    for secret in ("dave@", "erin@", "867-5309", "ivan@", "ana@"):
        assert secret not in written, secret


def test_a_password_in_the_dsn_is_refused_without_being_shown() -> None:
    from pydantic import ValidationError

    from crucible_dagster.experiment.ir import PostgresSource

    for dsn in ("postgresql://u:s3cretpw@h/db", "postgresql://u@h/db?password=s3cretpw",
                "host=h password=s3cretpw"):  # fmt: skip
        with pytest.raises(ValidationError) as raised:
            PostgresSource(table="t", dsn=dsn)
        message = raised.value.errors()[0]["msg"]
        assert "s3cretpw" not in message and "expected" in message


def test_a_file_url_of_another_host_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"found the host 'evil\.com'"):
        Feedback(source="file://evil.com/tmp/a.jsonl")
    assert Feedback(source="file://localhost/tmp/a.jsonl").source


def test_a_glob_never_reads_runs_own_records(tmp_path: Path, artifacts_dir: Path) -> None:
    (tmp_path / "events.jsonl").write_text(GOOD + "\n")
    run = artifacts_dir / "fb" / "r1"
    run.mkdir(parents=True)
    (run / "feedback.jsonl").write_text(GOOD.replace('"ok"', '"again"') + "\n")
    (run / "preference_pairs.jsonl").write_bytes(b"")  # an empty export: no reason to refuse
    found = lines_of(Path(str(tmp_path / "**" / "*.jsonl")))
    assert [e["id"] for e in found.events] == ["ok"]


def test_a_short_pii_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crucible_dagster.feedback.ingest import WeakKeyError

    path = tmp_path / "events.jsonl"
    path.write_text(GOOD + "\n")
    monkeypatch.setenv("CRUCIBLE_PII_KEY", "x")
    with pytest.raises(WeakKeyError, match="at least 16 characters"):
        lines_of(path)
