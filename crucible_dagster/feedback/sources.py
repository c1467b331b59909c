"""Raw feedback records from where ``reliability.feedback.source`` says: JSON Lines or Parquet
files (a path, folder or glob; local or an fsspec URL), or a PostgreSQL table.

A record that cannot be read (a line too long, not JSON, a key written twice, nested too deep,
not an object) is yielded with its problem and its place (``file:line``, ``table row n``), never
dropped; a source that cannot be read at all (missing, not a regular file, over its byte cap, a
database that does not answer) raises ``FeedbackSourceError`` naming it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, Any

from crucible_dagster.common.files import bounded_lines
from crucible_dagster.common.jsonsafe import DuplicateJsonKey, duplicate_json_keys
from crucible_dagster.experiment.ir import Feedback, FeedbackEvent, PostgresSource

JSONL = (".jsonl", ".ndjson", ".json")
PARQUET = (".parquet", ".pq")
DSN_VARIABLE = "CRUCIBLE_FEEDBACK_DSN"
EVENT_FIELDS = tuple(FeedbackEvent.model_fields)


class FeedbackSourceError(ValueError):
    """The source as a whole cannot be read; the message names it and why."""


@dataclass(frozen=True)
class RawRecord:
    where: str  # "events.jsonl:12", "events.parquet row 7", "table feedback row 3"
    data: dict[str, Any] | None
    problem: str | None = None


def read_records(settings: Feedback) -> Iterator[RawRecord]:
    """Every record of the source, at most ``max_records`` of them (more is refused, at the
    first one over, or before reading when a Parquet footer or a table count says so)."""
    for count, record in enumerate(_records(settings), start=1):
        if count > settings.max_records:
            raise _too_many(settings, f"more than {settings.max_records}")
        yield record


def _too_many(settings: Feedback, found: str) -> FeedbackSourceError:
    shown = (
        settings.source.table if isinstance(settings.source, PostgresSource) else settings.source
    )
    return FeedbackSourceError(
        f"reliability.feedback.source: {shown}: expected at most {settings.max_records} "
        f"records (reliability.feedback.max_records), found {found}"
    )


def _records(settings: Feedback) -> Iterator[RawRecord]:
    if isinstance(settings.source, PostgresSource):
        yield from _table_records(settings.source, settings)
        return
    from crucible_dagster.datasets.base import DatasetError
    from crucible_dagster.datasets.local import DataFiles, filesystem_errors

    try:
        files = DataFiles(settings.source, "", None, option="reliability.feedback.source")
        # before any check: a run's own files (an empty export, say) are not the source's
        files.paths = _not_run_records(files.paths)
        if not files.paths:
            raise DatasetError("names no data files", reason="not_found", where=settings.source)
        files.check(2**62)  # regular, readable, not empty: the cap is the feedback's own
    except DatasetError as exc:
        raise FeedbackSourceError(f"reliability.feedback.source: {exc}") from None
    if files.total > settings.max_bytes:
        raise FeedbackSourceError(
            f"reliability.feedback.source: {settings.source}: {files.total} bytes, over "
            f"reliability.feedback.max_bytes ({settings.max_bytes}); raise it to read this much"
        )
    for path in files.paths:
        suffix = PurePosixPath(path).suffix.lower()
        if suffix not in JSONL + PARQUET:
            raise FeedbackSourceError(
                f"reliability.feedback.source: {path}: expected a .jsonl, .ndjson, .json or "
                f".parquet file of feedback events, found {suffix or 'no extension'!r}"
            )
        try:
            with filesystem_errors(path):
                handle = files.fs.open(path, "rb") if files.fs else open(path, "rb")  # noqa: SIM115
        except DatasetError as exc:
            raise FeedbackSourceError(f"reliability.feedback.source: {exc}") from None
        with handle:  # what is read is judged record by record, below
            if suffix in PARQUET:
                yield from _parquet_records(handle, path, settings)
            else:
                yield from _jsonl_records(handle, path, settings)


def _not_run_records(paths: list[str]) -> list[str]:
    """The paths but those under the artifacts root: a glob beside the experiment file must not
    read runs' own records (telemetry, exports) back as feedback."""
    from crucible_dagster.runtime.run_dirs import artifacts_root

    root = os.path.realpath(artifacts_root(None))
    return [p for p in paths if not os.path.realpath(p).startswith(root + os.sep)]


def _depth(text: str) -> int:
    """The deepest nesting of brackets (inside strings too: a conservative count), before
    ``json.loads`` recurses into it."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _jsonl_records(handle: IO[bytes], path: str, settings: Feedback) -> Iterator[RawRecord]:
    for number, (raw, too_long) in enumerate(
        bounded_lines(handle, settings.max_line_bytes), start=1
    ):
        where = f"{path}:{number}"
        if too_long:
            yield RawRecord(where, None, f"expected a line of at most {settings.max_line_bytes} "
                            "bytes (reliability.feedback.max_line_bytes), found a longer one")  # fmt: skip
            continue
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield RawRecord(where, None, f"expected UTF-8 text, found byte {raw[exc.start]:#04x}")
            continue
        yield _parsed(where, text, settings.max_depth)


def _parsed(where: str, text: str, max_depth: int) -> RawRecord:
    # counting brackets is C-speed; the walk that finds the depth runs only when it could matter
    depth = _depth(text) if text.count("[") + text.count("{") > max_depth else 0
    if depth > max_depth:
        return RawRecord(where, None, f"expected JSON nested at most {max_depth} deep "
                         f"(reliability.feedback.max_depth), found {depth}")  # fmt: skip
    try:
        value = json.loads(text, object_pairs_hook=duplicate_json_keys)
    except DuplicateJsonKey as exc:
        return RawRecord(where, None, f"{str(exc.args[0])[:80]}: written twice in one record")
    except json.JSONDecodeError as exc:
        return RawRecord(where, None, f"expected a JSON object, found invalid JSON ({exc.msg})")
    except RecursionError:
        return RawRecord(where, None, "expected a JSON object, found JSON nested too deep")
    except ValueError:  # an integer of more digits than Python converts
        limit = sys.get_int_max_str_digits()
        return RawRecord(where, None, f"expected a JSON object, found an integer of more than "
                         f"{limit} digits")  # fmt: skip
    if not isinstance(value, dict):
        return RawRecord(where, None, f"expected a JSON object, found {type(value).__name__}")
    return RawRecord(where, value)


def _parquet_records(handle: IO[bytes], path: str, settings: Feedback) -> Iterator[RawRecord]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(handle)
    except (pa.ArrowException, OSError) as exc:
        raise FeedbackSourceError(
            f"reliability.feedback.source: {path}: expected a Parquet file, found one pyarrow "
            f"cannot read ({str(exc)[:200]})"
        ) from None
    if parquet.metadata.num_rows > settings.max_records:  # known from the footer: read nothing
        raise _too_many(settings, f"{parquet.metadata.num_rows} rows in {path}")
    row = 0
    for batch in parquet.iter_batches(batch_size=10_000):
        for record in batch.to_pylist():
            row += 1
            yield RawRecord(f"{path} row {row}", _without_nulls(record))


def _without_nulls(record: dict[str, Any]) -> dict[str, Any]:
    """A table has every column in every row: a null is an unset field, as in JSON Lines."""
    return {key: value for key, value in record.items() if value is not None}


def _table_records(source: PostgresSource, settings: Feedback) -> Iterator[RawRecord]:
    import psycopg2
    from psycopg2 import sql

    dsn = os.environ.get(DSN_VARIABLE) if "dsn" not in source.model_fields_set else None
    shown = f"reliability.feedback.source.table {source.table!r}"
    deadline = f"-c statement_timeout={int(source.timeout_s * 1000)}"
    try:
        connection = psycopg2.connect(dsn or source.dsn, connect_timeout=5, options=deadline)
    except psycopg2.Error as exc:
        raise FeedbackSourceError(
            f"{shown}: cannot connect to PostgreSQL: {_first_line(exc)}"
        ) from None
    table = sql.Identifier(*source.table.split("."))
    try:
        with connection, connection.cursor() as count:
            count.execute(sql.SQL("SELECT count(*) FROM {}").format(table))
            (rows,) = count.fetchone() or (0,)
            if rows > settings.max_records:
                raise _too_many(settings, f"{rows} rows")
            count.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(table))
            # only the event's columns are read: a table's others (a password, say) never are
            columns = [c.name for c in count.description or () if c.name in EVENT_FIELDS]
        if not columns:
            raise FeedbackSourceError(f"{shown}: expected columns named as the event's fields "
                                      f"({', '.join(EVENT_FIELDS)}), found none")  # fmt: skip
        with connection, connection.cursor(name="crucible_feedback") as cursor:
            cursor.itersize = 5_000
            listed = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
            cursor.execute(sql.SQL("SELECT {} FROM {}").format(listed, table))
            for number, row in enumerate(cursor, start=1):
                record = {c: _jsonable(v) for c, v in zip(columns, row, strict=True)}
                yield RawRecord(f"table {source.table} row {number}", _without_nulls(record))
    except psycopg2.Error as exc:
        raise FeedbackSourceError(f"{shown}: {_first_line(exc)}") from None
    finally:
        connection.close()


def _first_line(exc: Exception) -> str:
    """The server's message, its first line (psycopg2 adds the query and a caret below it)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _jsonable(value: Any) -> Any:
    """A database value as a JSON record has it: timestamps stay datetimes (the event model
    reads them), decimals become floats."""
    from decimal import Decimal

    if isinstance(value, memoryview | bytes):  # bytea: shown as what it is, never its repr
        return f"<{len(value)} bytes>"
    return float(value) if isinstance(value, Decimal) else value
