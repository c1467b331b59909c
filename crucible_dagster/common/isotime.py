"""ISO 8601 times read as Python 3.11's ``datetime.fromisoformat`` reads them, on 3.10 too.

Python 3.10's ``fromisoformat`` takes only what ``isoformat()`` writes: a baseline record or a
``--since`` written ``2026-01-01T00:00Z`` (what JavaScript and most tools write) is refused there.
3.11 reads most of ISO 8601: ``Z``, offsets without a colon or without minutes, basic formats
(``20260101T000000``), ISO week dates, any number of fraction digits (cut to microseconds), a
comma before them. :func:`parse_datetime` is ``fromisoformat`` on 3.11 and later, and on 3.10
that same grammar, so a file or an argument reads the same whatever Python runs it.
"""

from __future__ import annotations

import re
import sys
from datetime import date, datetime, timedelta, timezone

_ISO = re.compile(
    r"(?P<year>\d{4})"
    r"(?:-(?P<month>\d{2})-(?P<day>\d{2})|(?P<basic_month>\d{2})(?P<basic_day>\d{2})"
    r"|-?W(?P<week>\d{2})(?:-?(?P<weekday>\d))?)"
    r"(?:.(?P<hour>\d{2})(?::?(?P<minute>\d{2})(?::?(?P<second>\d{2})"
    r"(?:[.,](?P<fraction>\d+))?)?)?"
    r"(?P<tz>Z|(?P<sign>[+-])(?P<tz_hour>\d{2})(?::?(?P<tz_minute>\d{2})(?::?(?P<tz_second>\d{2})"
    r"(?:\.(?P<tz_fraction>\d+))?)?)?)?)?",
    re.ASCII | re.DOTALL,
)


def _microseconds(fraction: str | None) -> int:
    """Fraction digits as microseconds: any count, digits past the sixth dropped (as 3.11)."""
    return int((fraction or "0")[:6].ljust(6, "0"))


def _offset(found: re.Match[str]) -> timezone | None:
    if found["tz"] is None:
        return None
    if found["tz"] == "Z":
        return timezone.utc
    size = timedelta(
        hours=int(found["tz_hour"]),
        minutes=int(found["tz_minute"] or 0),
        seconds=int(found["tz_second"] or 0),
        microseconds=_microseconds(found["tz_fraction"]),
    )
    return timezone(-size if found["sign"] == "-" else size)  # ValueError past 24 h, as 3.11


def _day(found: re.Match[str]) -> date:
    year = int(found["year"])
    if found["week"] is not None:
        return date.fromisocalendar(year, int(found["week"]), int(found["weekday"] or 1))
    month = found["month"] or found["basic_month"]
    return date(year, int(month), int(found["day"] or found["basic_day"]))


def _parse_like_311(text: str) -> datetime:
    """Python 3.11's ``datetime.fromisoformat`` grammar, for 3.10 (where it is not built in)."""
    found = _ISO.fullmatch(text)
    if found is None:
        raise ValueError(f"Invalid isoformat string: {text!r}")
    day = _day(found)
    return datetime(
        day.year,
        day.month,
        day.day,
        int(found["hour"] or 0),
        int(found["minute"] or 0),
        int(found["second"] or 0),
        _microseconds(found["fraction"]),
        tzinfo=_offset(found),
    )


def parse_datetime(text: str) -> datetime:
    """``datetime.fromisoformat(text)`` as Python 3.11 and later read it; ValueError if not."""
    if sys.version_info >= (3, 11):
        return datetime.fromisoformat(text)
    try:  # what isoformat() writes, the usual case, read natively
        return datetime.fromisoformat(text)
    except ValueError:
        return _parse_like_311(text)
