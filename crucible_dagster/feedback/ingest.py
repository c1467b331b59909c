"""Raw records to feedback events: validated by the event model, filtered by type and age,
sampled by id, and (``anonymize_pii``) redacted, with every record accounted for.

Each record lands in exactly one count (``invalid``, ``duplicate_id``, ``other_type``,
``expired``, ``sampled_out`` or ``kept``), and each invalid one is listed with its place, field,
what was expected and what was found: nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from pydantic import ValidationError

from crucible_dagster.common.pii import each_string, redact, redacted_counted
from crucible_dagster.experiment.ir import Feedback, FeedbackEvent
from crucible_dagster.feedback.sources import RawRecord

#: the key of the hash that replaces user and session ids: set it to link one user's events
#: across runs; unset, each run draws its own (ids still group within the run)
PII_KEY_VARIABLE = "CRUCIBLE_PII_KEY"
OUTCOMES = (
    "kept", "invalid", "duplicate_id", "other_type", "expired", "sampled_out", "other_day",
)  # fmt: skip
#: the event's fields as table columns (JSON values as JSON text)
COLUMNS = (
    "id", "feedback_type", "feedback_value", "deployment_id", "model_version", "input", "output",
    "user_id", "session_id", "latency_ms", "metadata", "timestamp", "day", "source",
)  # fmt: skip


@dataclass
class Ingested:
    events: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("read", *OUTCOMES), 0))
    redactions: int = 0  # PII findings replaced, over every kept event

    def summary(self) -> dict[str, Any]:
        return {**self.counts, "redactions": self.redactions, "errors_listed": len(self.errors)}


def ingest(
    records: Iterable[RawRecord],
    settings: Feedback,
    seed: int,
    now: datetime | None = None,
    day: date | None = None,
) -> Ingested:
    """``day``: keep only the events of that day (UTC); the rest, undated ones too, are
    counted ``other_day`` (a daily partition's events)."""
    now = now or datetime.now(timezone.utc)
    oldest = now - timedelta(days=settings.retention_days) if settings.retention_days else None
    key = _pii_key()
    found = Ingested()
    first_seen: dict[str, str] = {}
    for record in records:
        found.counts["read"] += 1
        event = _validated(record, found)
        if event is None:
            continue
        outcome = _outcome(event, record, settings, seed, oldest, first_seen, found)
        if outcome == "kept" and day is not None and _day(event) != day:
            outcome = "other_day"
        found.counts[outcome] += 1
        if outcome == "kept":
            found.events.append(_row(event, record.where, settings.anonymize_pii, key, found))
    if settings.anonymize_pii:  # a refused value is quoted in its error: redacted there too
        for error in found.errors:
            error.update({k: redact(v) for k, v in error.items()})
    return found


def _validated(record: RawRecord, found: Ingested) -> FeedbackEvent | None:
    if record.data is None:
        found.counts["invalid"] += 1
        found.errors.append({"where": record.where, "field": "", "problem": str(record.problem)})
        return None
    try:
        return FeedbackEvent.model_validate(record.data)
    except ValidationError as exc:
        found.counts["invalid"] += 1
        for error in exc.errors(include_url=False):
            field, problem = ".".join(str(p) for p in error["loc"]), _problem(error)
            if not field and ": " in problem:  # a check of the whole event names its field
                field, problem = problem.split(": ", 1)
            found.errors.append({"where": record.where, "field": field, "problem": problem})
        return None


def _problem(error: Any) -> str:
    """pydantic's message with what was found (its type and a short, escaped excerpt)."""
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        return "required, found nothing"
    if error["type"] == "extra_forbidden":  # its value is not copied: it may be anything
        return f"unknown field; expected the event's: {', '.join(FeedbackEvent.model_fields)}"
    if "found" in message:
        return message
    value = error.get("input")
    shown = json.dumps(value, default=str)[:60] if value is not None else "null"
    return f"{message}, found {type(value).__name__} {shown}"


def _outcome(
    event: FeedbackEvent,
    record: RawRecord,
    settings: Feedback,
    seed: int,
    oldest: datetime | None,
    first_seen: dict[str, str],
    found: Ingested,
) -> str:
    if event.id in first_seen:  # the same event twice would count its vote twice
        found.errors.append({"where": record.where, "field": "id", "problem": "expected a new "
                             f"event id, found {event.id[:80]!r} again (first at {first_seen[event.id]})"})  # fmt: skip
        return "duplicate_id"
    first_seen[event.id] = record.where
    if event.feedback_type not in settings.feedback_types:
        return "other_type"
    if oldest is not None and event.timestamp is not None and _utc(event.timestamp) < oldest:
        return "expired"
    if not sampled(event.id, seed, settings.sampling_rate):
        return "sampled_out"
    return "kept"


def sampled(event_id: str, seed: int, rate: float) -> bool:
    """Whether the event is in the sample: by a hash of the seed and its id, so a re-run (or
    another source holding the same events) keeps the same ones."""
    if rate >= 1:
        return True
    digest = hashlib.blake2b(f"{seed}:{event_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * 2**64


def _day(event: FeedbackEvent) -> date | None:
    return _utc(event.timestamp).date() if event.timestamp is not None else None


def _utc(moment: datetime) -> datetime:
    return (
        moment.replace(tzinfo=timezone.utc)
        if moment.tzinfo is None
        else moment.astimezone(timezone.utc)
    )


#: the fields whose text is searched for personal data (every text field but the type)
TEXTS = ("id", "deployment_id", "model_version", "input", "output", "feedback_value", "metadata")
#: a shorter key would make the hashed ids easy to reverse by trying names
MIN_KEY = 16


class WeakKeyError(ValueError):
    """``$CRUCIBLE_PII_KEY`` too short to key the hash of user ids."""


def _pii_key() -> bytes:
    configured = os.environ.get(PII_KEY_VARIABLE)
    if configured and len(configured.strip()) < MIN_KEY:
        raise WeakKeyError(
            f"${PII_KEY_VARIABLE}: expected a key of at least {MIN_KEY} characters (a short one "
            f"makes the hashed user ids easy to reverse), found {len(configured.strip())}"
        )
    return configured.encode() if configured else secrets.token_bytes(32)


def _row(
    event: FeedbackEvent, where: str, anonymize: bool, key: bytes, found: Ingested
) -> dict[str, Any]:
    values = event.model_dump()
    if anonymize:
        for name in TEXTS:
            values[name] = _redacted(values[name], found)
        where = redact(where)
        for name in ("user_id", "session_id"):
            if values[name] is not None:
                digest = hmac.new(key, values[name].encode(), hashlib.sha256).hexdigest()
                values[name] = f"anon-{digest[:16]}"
    moment = _utc(event.timestamp) if event.timestamp is not None else None
    row = {name: _cell(values.get(name)) for name in COLUMNS[:11]}
    return {
        **row,
        "feedback_value": values["feedback_value"],  # typed: table.py writes it as text
        "timestamp": moment.isoformat() if moment else None,
        "day": moment.date().isoformat() if moment else None,
        "source": where,
    }


def _redacted(value: Any, found: Ingested) -> Any:
    def fix(text: str) -> str:
        fixed, count = redacted_counted(text)
        found.redactions += count
        return fixed

    if isinstance(value, dict):  # a key can hold an address as well as a value
        return {fix(str(k)): _redacted(v, found) for k, v in value.items()}
    return each_string(value, fix)


def _cell(value: Any) -> Any:
    """A table cell: text and numbers as they are, anything else as JSON text."""
    if value is None or (isinstance(value, str | int | float) and not isinstance(value, bool)):
        return value
    return json.dumps(value, sort_keys=True, default=str)
