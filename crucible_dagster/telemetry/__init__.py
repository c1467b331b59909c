"""Telemetry: one versioned event schema, a writer safe across threads and processes, and
metrics over time windows with export (issue 27). The run driver emits lifecycle events; a
stage (the predict stage) records one ``request`` event per answer through ``record``."""

from crucible_dagster.telemetry.events import SCHEMA_VERSION, TelemetryEvent, read_events
from crucible_dagster.telemetry.recording import record, recording

__all__ = ["SCHEMA_VERSION", "TelemetryEvent", "read_events", "record", "recording"]
