"""Dagster's instance as a run source for ``crucible_dagster.run_history``: the runs of an
experiment's job (by the ``crucible/experiment`` run tag), on SQLite or Postgres alike.

Registered as the ``crucible_dagster.run_sources`` entry point ``dagster``; it answers only
where ``DAGSTER_HOME`` names an instance, so a plain ``crucible`` user pays nothing.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any


def _iso(timestamp: float | None) -> str | None:
    """A run record's time as ISO 8601 in UTC; a time no calendar holds is unknown (None)."""
    if not isinstance(timestamp, int | float) or isinstance(timestamp, bool) or not timestamp:
        return None
    try:
        return datetime.fromtimestamp(timestamp, timezone.utc).isoformat()
    except (OverflowError, OSError, ValueError):
        return None


def dagster_runs(experiment_id: str, instance: Any = None) -> list[dict[str, Any]]:
    """One dict per Dagster run of the experiment: run id, status, start, end, parent."""
    if instance is None and not os.environ.get("DAGSTER_HOME"):
        return []  # before importing Dagster: `crucible runs` without an instance stays light
    import dagster as dg

    from crucible_dagster.dagster_plugin.translator import CrucibleTranslator

    if instance is None:
        with dg.DagsterInstance.get() as owned:
            return dagster_runs(experiment_id, owned)
    tag = CrucibleTranslator().tag("experiment")
    records = instance.get_run_records(filters=dg.RunsFilter(tags={tag: experiment_id}))
    return [
        {
            "run_id": record.dagster_run.run_id,
            "status": record.dagster_run.status.value.lower(),
            "started_at": _iso(record.start_time),
            "ended_at": _iso(record.end_time),
            "parent_run_id": record.dagster_run.parent_run_id,
            "job_name": record.dagster_run.job_name,
        }
        for record in records
    ]
