"""Where a stage's high-volume events go: the run's writer, bound while the stage runs.

The driver binds ``recording(write, stage=...)`` around each stage; code inside it (the predict
stage, for each answer) calls ``record("request", ...)``. Outside a run nothing is written, so a
library call from a notebook costs nothing. Request events go to the run's file only, never to
the log or Dagster's event log: ten thousand requests would be ten thousand log lines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from crucible_dagster.common.pii import redact

Write = Callable[..., None]
_CURRENT: ContextVar[tuple[Write, dict[str, Any]] | None] = ContextVar(
    "crucible_telemetry", default=None
)


@contextmanager
def recording(write: Write, **where: Any) -> Iterator[None]:
    """Events recorded inside go to ``write(event, **fields)``, with ``where`` (the stage)."""
    token = _CURRENT.set((write, where))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def record(event: str, **fields: Any) -> bool:
    """Record one event in the running stage's run; False when no run is recording."""
    bound = _CURRENT.get()
    if bound is None:
        return False
    write, where = bound
    sample_id = fields.get("sample_id")
    if isinstance(sample_id, str):  # an id may be the PII itself (an email as the id column)
        fields["sample_id"] = redact(sample_id)[:512]
    write(event, **where, **fields)
    return True
