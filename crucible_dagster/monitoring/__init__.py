"""Monitoring limits (``reliability.monitoring``) judged over the telemetry of the recent runs:
the ``monitor`` stage."""
