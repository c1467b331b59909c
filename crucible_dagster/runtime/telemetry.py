"""Run and stage lifecycle events with durations, fanned out to pluggable sinks.

Sinks: Python logging (always), ``telemetry.jsonl`` in the run directory, the Dagster
event log (added by the adapter), a progress printer (the CLI).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crucible_dagster.common.jsonsafe import to_jsonable

logger = logging.getLogger("crucible_dagster")

Sink = Callable[[dict[str, Any]], None]


#: what would break a log record over several lines (a stage's message may hold any of them)
_LINE_BREAKS = re.compile("[\n\r\t\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


def _one_line(value: Any) -> str:
    """``value`` as text with line breaks and tabs shown as escapes: one event, one log line."""
    return _LINE_BREAKS.sub(lambda m: m.group().encode("unicode_escape").decode(), str(value))


def logging_sink(event: dict[str, Any]) -> None:
    kind = event["event"]
    level = logging.WARNING if kind.endswith("failed") else logging.INFO
    details = ", ".join(
        f"{k}={_one_line(v)}" for k, v in event.items() if k not in ("event", "timestamp")
    )
    logger.log(level, "%s %s", kind, details)


class JsonlSink:
    """Appends one JSON object per line; each line is written whole with one ``write`` call."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        line = json.dumps(to_jsonable(event), sort_keys=True) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)


class Telemetry:
    def __init__(self, sinks: Iterable[Sink] = (), **common: Any):
        self.sinks: list[Sink] = [logging_sink, *sinks]
        self.common = common

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        record = {
            "event": event,
            "timestamp": datetime.now(UTC).isoformat(),
            **self.common,
            **fields,
        }
        for sink in self.sinks:
            sink(record)
        return record
