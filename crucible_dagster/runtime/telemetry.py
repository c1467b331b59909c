"""Run and stage lifecycle events with durations, fanned out to pluggable sinks.

Sinks: Python logging (always), ``telemetry.jsonl`` in the run directory, the Dagster
event log (added by the adapter), a progress printer (the CLI).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

from crucible_dagster.telemetry.events import SCHEMA_VERSION
from crucible_dagster.telemetry.writer import EventWriter

logger = logging.getLogger("crucible_dagster")
_HOST = socket.gethostname()[:256]

Sink = Callable[[dict[str, Any]], None]


#: what would break a log record over several lines (a stage's message may hold any of them)
_LINE_BREAKS = re.compile("[\n\r\t\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


def _one_line(value: Any) -> str:
    """``value`` as text with line breaks and tabs shown as escapes: one event, one log line."""
    return _LINE_BREAKS.sub(lambda m: m.group().encode("unicode_escape").decode(), str(value))


#: fields every event has, left out of its log line
_QUIET = frozenset({"event", "timestamp", "schema_version", "event_id", "host", "pid"})


def logging_sink(event: dict[str, Any]) -> None:
    kind = event["event"]
    level = logging.WARNING if kind.endswith("failed") else logging.INFO
    details = ", ".join(f"{k}={_one_line(v)}" for k, v in event.items() if k not in _QUIET)
    logger.log(level, "%s %s", kind, details)


class JsonlSink(EventWriter):
    """``telemetry.jsonl``: the run's events in the one schema (``crucible_dagster.telemetry``),
    one line each, written whole (see ``EventWriter``)."""

    def after_run(self) -> None:
        """The run's record is final: no descriptor is held past it (a later event, a sweep's
        comparison say, opens the file again)."""
        self.close()


class Telemetry:
    """The run's events: lifecycle events go to every sink (the log, Dagster, the progress
    printer, the file); ``record`` sends high-volume ones (requests) to the file sinks only."""

    def __init__(self, sinks: Iterable[Sink] = (), **common: Any):
        self.sinks: list[Sink] = [logging_sink, *sinks]
        self.common = common

    def _event(self, event: str, fields: dict[str, Any]) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "event_id": uuid.uuid4().hex,
            "event": event,
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "host": _HOST,
            "pid": os.getpid(),
            **self.common,
            **fields,
        } | ({"message": str(fields["message"])[:8000]} if "message" in fields else {})

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        record = self._event(event, fields)
        for sink in self.sinks:
            sink(record)
        return record

    def record(self, event: str, **fields: Any) -> None:
        """A high-volume event (a request): to the run's file only."""
        files = [s for s in self.sinks if isinstance(s, EventWriter)]  # the OTLP sink reads it
        if files:
            record = self._event(event, fields)
            for sink in files:
                sink(record)
