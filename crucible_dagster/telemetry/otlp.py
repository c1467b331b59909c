"""A run's telemetry as OpenTelemetry traces over OTLP (the ``otel`` extra), off by default.

``CRUCIBLE_OTEL=otlp`` turns it on; the endpoint and its headers are OpenTelemetry's own
settings (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
``OTEL_EXPORTER_OTLP_HEADERS``, ...), honoured by the SDK's HTTP exporter. When the run ends,
its ``telemetry.jsonl`` (every process's events, workers' included) becomes one trace: the run
span, a span per stage under it, a span per request under its stage (with the event's fields
as attributes, and the GenAI conventions' model and token counts), retries and hedges as span
events of their stage. Spans carry the recorded times, so the trace shows what happened, not
when it was sent.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from crucible_dagster.telemetry.events import TelemetryEvent, read_events

OTEL_ENV = "CRUCIBLE_OTEL"
RUN_ENDS = ("run_completed", "run_failed", "run_interrupted", "run_budget_exhausted")
logger = logging.getLogger("crucible_dagster")


class OtlpSetupError(ValueError):
    """``CRUCIBLE_OTEL`` names an export this installation cannot do."""


def otlp_enabled() -> bool:
    """``CRUCIBLE_OTEL``: unset or ``off`` is off, ``otlp`` is on; anything else is refused."""
    value = os.environ.get(OTEL_ENV, "").strip().lower()
    if value in ("", "off", "0", "false"):
        return False
    if value not in ("otlp", "1", "true", "on"):
        raise OtlpSetupError(f"{OTEL_ENV}: expected otlp or off, got {value!r}")
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        raise OtlpSetupError(
            f"{OTEL_ENV}=otlp needs the otel extra: pip install 'crucible_dagster[otel]'"
        ) from None
    return True


def trace_sinks(telemetry_file: Path) -> list[OtlpTraceSink]:
    """The OTLP trace export of a run whose events go to ``telemetry_file``, when
    ``CRUCIBLE_OTEL`` asks for it (checked: a bad value is refused here)."""
    return [OtlpTraceSink(telemetry_file)] if otlp_enabled() else []


class OtlpTraceSink:
    """A telemetry sink that exports the run's trace when the run ends (a failed export is
    logged: telemetry never fails a run)."""

    def __init__(self, telemetry_file: Path):
        self.telemetry_file = telemetry_file

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("event") not in RUN_ENDS:
            return
        events, problems = read_events(self.telemetry_file)
        for problem in problems:
            logger.warning("OTLP export skips %s", problem)
        for export in (export_trace, export_metrics):
            try:
                export(events)
            except Exception as exc:  # the exporter's own errors: the run's result stands
                logger.warning("OTLP export failed: %s: %s", type(exc).__name__, exc)


def _ns(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000_000)


def _attributes(event: TelemetryEvent) -> dict[str, Any]:
    skip = {"timestamp", "schema_version"}
    found = {
        f"crucible.{k}": v
        for k, v in event.model_dump().items()
        if v is not None and k not in skip and isinstance(v, str | int | float | bool)
    }
    if event.model:
        found["gen_ai.request.model"] = event.model
    if event.prompt_tokens is not None:
        found["gen_ai.usage.input_tokens"] = event.prompt_tokens
    if event.completion_tokens is not None:
        found["gen_ai.usage.output_tokens"] = event.completion_tokens
    return found


def export_trace(events: Iterable[TelemetryEvent], exporter: Any = None) -> int:
    """Send the run in ``events`` as one trace; the number of spans sent."""
    events = sorted(events, key=lambda e: e.timestamp)
    start = next((e for e in events if e.event == "run_started"), None)
    end = next((e for e in reversed(events) if e.event in RUN_ENDS), None)
    if start is None or end is None:
        return 0
    provider, tracer = _tracer(start, exporter)
    trace = _SpanTree(tracer, start)
    for event in events:
        trace.add(event)
    sent = trace.end(end)
    provider.shutdown()
    return sent


def _tracer(start: TelemetryEvent, exporter: Any) -> tuple[Any, Any]:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    resource = Resource.create(
        {"service.name": "crucible", "crucible.experiment_id": start.experiment_id or ""}
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, provider.get_tracer("crucible_dagster")


class _SpanTree:
    """The run span, its open stage spans, and the spans ended so far."""

    def __init__(self, tracer: Any, start: TelemetryEvent):
        from opentelemetry import trace

        self._trace, self.tracer, self.sent = trace, tracer, 0
        self.run = tracer.start_span(
            f"run {start.experiment_id}",
            start_time=_ns(start.timestamp),
            attributes=_attributes(start),
        )
        self.stages: dict[str, Any] = {}

    def _child(self, name: str, parent: Any, start_ns: int, event: TelemetryEvent) -> Any:
        context = self._trace.set_span_in_context(parent)
        return self.tracer.start_span(
            name, context=context, start_time=start_ns, attributes=_attributes(event)
        )

    def _ended(self, span: Any, end_ns: int, error: str | None = None) -> None:
        if error is not None:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, error))
        span.end(end_time=end_ns)
        self.sent += 1

    def add(self, event: TelemetryEvent) -> None:
        at, stage = _ns(event.timestamp), str(event.stage)
        if event.event == "stage_started" and event.stage:
            self.stages[stage] = self._child(f"stage {stage}", self.run, at, event)
        elif event.event in ("stage_completed", "stage_failed") and stage in self.stages:
            span = self.stages.pop(stage)
            span.set_attributes(_attributes(event))
            failed = event.event == "stage_failed"
            self._ended(span, at, (event.error_type or "failed") if failed else None)
        elif event.event == "request":
            began = at - int((event.latency_ms or 0) * 1_000_000)
            name = f"request {event.variant or ''}".strip()
            span = self._child(name, self.stages.get(stage, self.run), began, event)
            self._ended(span, at, (event.error_kind or "error") if event.success is False else None)
        elif event.event in ("retry", "hedge"):
            self.stages.get(stage, self.run).add_event(event.event, _attributes(event), at)

    def end(self, end: TelemetryEvent) -> int:
        """Close what is open at the run's end; the number of spans sent."""
        for span in self.stages.values():  # a stage the run never finished ends with it
            self._ended(span, _ns(end.timestamp))
        failed = end.event != "run_completed"
        self._ended(self.run, _ns(end.timestamp), end.event if failed else None)
        return self.sent


def export_metrics(events: Iterable[TelemetryEvent], exporter: Any = None) -> int:
    """The run's requests as OTLP metrics: ``crucible.requests`` (a count, by variant, model
    and outcome, each kept event standing for 1 / sampling_rate), ``crucible.request.duration``
    (a histogram in ms), ``crucible.request.cost`` and ``crucible.request.tokens``; the number
    of request events read."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    requests = [e for e in events if e.event == "request"]
    if not requests:
        return 0
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter()
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    resource = Resource.create(
        {"service.name": "crucible", "crucible.experiment_id": requests[0].experiment_id or ""}
    )
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = provider.get_meter("crucible_dagster")
    count = meter.create_counter("crucible.requests", unit="{request}")
    duration = meter.create_histogram("crucible.request.duration", unit="ms")
    cost = meter.create_counter("crucible.request.cost")
    tokens = meter.create_counter("crucible.request.tokens", unit="{token}")
    for event in requests:
        weight = 1.0 / (event.sampling_rate or 1.0)
        where = {
            "crucible.run_id": event.run_id or "",
            "crucible.variant": event.variant or "",
            "gen_ai.request.model": event.model or "",
            "crucible.outcome": "success" if event.success else (event.error_kind or "error"),
        }
        count.add(weight, where)
        if event.latency_ms is not None:
            duration.record(event.latency_ms, where)
        cost.add((event.cost or 0.0) * weight, where)
        used = (event.prompt_tokens or 0) + (event.completion_tokens or 0)
        tokens.add(used * weight, where)
    provider.shutdown()  # collects and exports once
    return len(requests)
