"""Reading a finished run's events in tests."""

from __future__ import annotations

from typing import Any

import dagster as dg


def step_keys(result: Any, event_type: dg.DagsterEventType) -> set[str]:
    """Step keys of every event of ``event_type`` in an execution result."""
    return {e.step_key for e in result.all_events if e.event_type == event_type and e.step_key}
