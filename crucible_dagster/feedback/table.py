"""Kept feedback events as a Parquet table with fixed columns and types, whatever the events
hold: ``feedback_value`` as text (JSON for a thumb or a number) beside the typed ``thumbs_up``
and ``rating``, so a reader never meets a column whose type changes from one file to the next."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from crucible_dagster.common.files import atomic_write_with
from crucible_dagster.feedback.ingest import COLUMNS


def schema() -> Any:
    import pyarrow as pa

    # every column text (JSON text for what is not) but the one number of the event
    fields = [pa.field(c, pa.float64() if c == "latency_ms" else pa.string()) for c in COLUMNS]
    return pa.schema([*fields, pa.field("thumbs_up", pa.bool_()), pa.field("rating", pa.float64())])


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


def write_events(path: Path, events: list[dict[str, Any]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, list[Any]] = {c: [e.get(c) for e in events] for c in COLUMNS}
    for name in ("input", "output", "feedback_value"):
        columns[name] = [_as_text(v) for v in columns[name]]
    columns["thumbs_up"] = [
        e["feedback_value"] if e["feedback_type"] == "thumbs" else None for e in events
    ]
    columns["rating"] = [
        float(e["feedback_value"]) if e["feedback_type"] == "rating" else None for e in events
    ]
    table = pa.table(columns, schema=schema())
    return atomic_write_with(path, lambda tmp: pq.write_table(table, tmp))
