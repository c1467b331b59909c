"""parse_datetime reads ISO 8601 as Python 3.11's datetime.fromisoformat does, on 3.10 too: the
3.10 fallback grammar is checked against literal values, and on 3.11+ against fromisoformat
itself, so a difference between the two shows on either Python."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone

import pytest

from crucible_dagster.common.isotime import _parse_like_311, parse_datetime

UTC = timezone.utc
PLUS_ONE = timezone(timedelta(hours=1))

READ = [
    ("2026-01-01T00:00Z", datetime(2026, 1, 1, tzinfo=UTC)),  # JavaScript's, a baseline's
    ("2026-01-01T00:00:00.000Z", datetime(2026, 1, 1, tzinfo=UTC)),
    ("2026-01-01", datetime(2026, 1, 1)),
    ("20260101", datetime(2026, 1, 1)),
    ("20260101T093005", datetime(2026, 1, 1, 9, 30, 5)),
    ("2026-01-01T09", datetime(2026, 1, 1, 9)),
    ("2026-01-01T0930", datetime(2026, 1, 1, 9, 30)),
    ("2026-01-01 09:30:05", datetime(2026, 1, 1, 9, 30, 5)),
    ("2026-01-01T09:30:05.1", datetime(2026, 1, 1, 9, 30, 5, 100000)),
    ("2026-01-01T09:30:05,5", datetime(2026, 1, 1, 9, 30, 5, 500000)),
    ("2026-01-01T09:30:05.1234567", datetime(2026, 1, 1, 9, 30, 5, 123456)),
    ("2026-01-01T09:30:05+01", datetime(2026, 1, 1, 9, 30, 5, tzinfo=PLUS_ONE)),
    ("2026-01-01T09:30:05+0100", datetime(2026, 1, 1, 9, 30, 5, tzinfo=PLUS_ONE)),
    ("2026-01-01T09:30:05+01:00", datetime(2026, 1, 1, 9, 30, 5, tzinfo=PLUS_ONE)),
    (
        "2026-01-01T09:30-05:30",
        datetime(2026, 1, 1, 9, 30, tzinfo=timezone(-timedelta(hours=5, minutes=30))),
    ),
    (
        "2026-01-01T00:00+01:00:30.5",
        datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=1, seconds=30, microseconds=5e5))),
    ),
    ("2026-W01-1", datetime(2025, 12, 29)),
    ("2026W015T12:00", datetime(2026, 1, 2, 12)),
    ("2026-W01", datetime(2025, 12, 29)),
]

REFUSED = [
    "",
    "2026",  # reduced precision
    "2026-01",
    "2026-001",  # ordinal dates
    "2026-01-01T00:00:00z",  # lower-case z
    "2026-01-01Z",  # an offset needs a time
    "2026-01-01T24:00:00",
    "2026-02-30",
    "2026-01-01T00:00+24:00",
    "2026-W54-1",
    "yesterday",
    "2026-01-01T00:00:00 ",
    "２０２６-01-01",  # only ASCII digits
]


@pytest.mark.parametrize(("text", "expected"), READ)
def test_the_310_grammar_reads_what_311_reads(text: str, expected: datetime) -> None:
    parsed = _parse_like_311(text)
    assert parsed == expected and parsed.utcoffset() == expected.utcoffset()
    assert parse_datetime(text) == expected
    if sys.version_info >= (3, 11):  # the expectation is 3.11's own reading
        assert datetime.fromisoformat(text) == expected


@pytest.mark.parametrize("text", REFUSED)
def test_the_310_grammar_refuses_what_311_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        _parse_like_311(text)
    with pytest.raises(ValueError):
        parse_datetime(text)
    if sys.version_info >= (3, 11):
        with pytest.raises(ValueError):
            datetime.fromisoformat(text)
