"""A run's telemetry as OpenTelemetry traces and metrics over OTLP (the ``otel`` extra), off
by default.

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
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from crucible_dagster.telemetry.events import TelemetryEvent, read_events

OTEL_ENV = "CRUCIBLE_OTEL"
RUN_ENDS = ("run_completed", "run_failed", "run_interrupted", "run_budget_exhausted")
logger = logging.getLogger("crucible_dagster")


class OtlpExportError(RuntimeError):
    """The collector did not take what was sent (the OTLP exporter reports it, never raises)."""


class OtlpSetupError(ValueError):
    """``CRUCIBLE_OTEL`` names an export this installation cannot do."""


def otlp_enabled() -> bool:
    """``CRUCIBLE_OTEL``: unset, empty or ``off`` is off, ``otlp`` is on; anything else is
    refused (``OTLP``, ``1``, ``true`` included: one spelling, as documented)."""
    value = os.environ.get(OTEL_ENV, "")
    if value in ("", "off"):
        return False
    if value != "otlp":
        raise OtlpSetupError(f"{OTEL_ENV}: expected otlp or off, got {value!r}")
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        raise OtlpSetupError(
            f"{OTEL_ENV}=otlp needs the otel extra: pip install 'crucible_dagster[otel]'"
        ) from None
    return True


def export_deadline_s() -> float:
    """How long a run's export may take in all: ``OTEL_EXPORTER_OTLP_TIMEOUT`` (seconds, as
    OpenTelemetry reads it), else 10; never more than 60."""
    try:
        wanted = float(os.environ.get("OTEL_EXPORTER_OTLP_TIMEOUT", "10"))
    except ValueError:
        wanted = 10.0
    return min(max(wanted, 0.1), 60.0) if wanted == wanted else 10.0


def trace_sinks(telemetry_file: Path) -> list[OtlpTraceSink]:
    """The OTLP trace export of a run whose events go to ``telemetry_file``, when
    ``CRUCIBLE_OTEL`` asks for it (checked: a bad value is refused here)."""
    return [OtlpTraceSink(telemetry_file)] if otlp_enabled() else []


class OtlpTraceSink:
    """A telemetry sink that notes the run's end; ``after_run`` (called once the run's record
    is final) exports its trace and metrics within ``export_deadline_s``, on a thread of its
    own that is abandoned past the deadline: a collector that is down, hangs or answers a byte
    at a time costs the run at most that long, logged once, and never fails it."""

    def __init__(self, telemetry_file: Path):
        self.telemetry_file = telemetry_file
        self._ended = False

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("event") in RUN_ENDS:
            self._ended = True

    def after_run(self) -> None:
        if not self._ended:
            return
        self._ended = False
        events, problems = read_events(self.telemetry_file)
        if problems:
            logger.warning(
                "OTLP export skips %d unreadable line(s): %s", len(problems), problems[0]
            )
        failures: list[str] = []
        ended: list[float] = []
        deadline = export_deadline_s()

        def export() -> None:
            try:
                for send in (export_trace, export_metrics):
                    try:
                        send(events, timeout_s=deadline)
                    except Exception as exc:  # the exporter's own errors: the run stands
                        failures.append(f"{type(exc).__name__}: {exc}")
            finally:
                ended.append(time.monotonic())

        started = time.monotonic()
        thread = threading.Thread(target=export, name="crucible-otlp", daemon=True)
        thread.start()
        thread.join(deadline)
        # Late is judged by when the export ended, not by whether the thread is alive when this
        # line runs: the exporter's own timeout is the deadline too, so on a loaded machine it
        # could give up between join's return and an is_alive check, and nothing was said.
        if not ended or (failures and ended[0] - started >= deadline):
            logger.warning(
                "OTLP export did not finish within %.0f s (OTEL_EXPORTER_OTLP_TIMEOUT); "
                "the run's record is complete, its trace was not sent",
                deadline,
            )
        elif failures:
            logger.warning("OTLP export failed: %s", failures[0])


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


def export_trace(
    events: Iterable[TelemetryEvent], exporter: Any = None, timeout_s: float = 10.0
) -> int:
    """Send the run in ``events`` as one trace, in one request; the number of spans sent."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    events = sorted(events, key=lambda e: e.timestamp)
    start = next((e for e in events if e.event == "run_started"), None)
    end = next((e for e in reversed(events) if e.event in RUN_ENDS), None)
    if start is None or end is None:
        return 0
    built = InMemorySpanExporter()  # the spans are built first, then sent in one request
    provider, tracer = _tracer(start, SimpleSpanProcessor(built))
    trace = _SpanTree(tracer, start)
    for event in events:
        trace.add(event)
    trace.end(end)
    provider.shutdown()
    spans = built.get_finished_spans()
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(timeout=timeout_s)
    from opentelemetry.sdk.trace.export import SpanExportResult

    result = exporter.export(spans)
    exporter.shutdown()
    if result is not SpanExportResult.SUCCESS:  # the exporter logs why; it never raises
        raise OtlpExportError(f"the collector did not take the trace ({len(spans)} spans)")
    return len(spans)


def _resource(event: TelemetryEvent) -> Any:
    """What sent the trace and the metrics: the service and the run's experiment."""
    from opentelemetry.sdk.resources import Resource

    return Resource.create(
        {"service.name": "crucible", "crucible.experiment_id": event.experiment_id or ""}
    )


def _tracer(start: TelemetryEvent, processor: Any) -> tuple[Any, Any]:
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider(resource=_resource(start))
    provider.add_span_processor(processor)
    return provider, provider.get_tracer("crucible_dagster")


class _SpanTree:
    """The run span and its open stage spans, as the run's events arrive in time order."""

    def __init__(self, tracer: Any, start: TelemetryEvent):
        from opentelemetry import trace

        self._trace, self.tracer = trace, tracer
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

    def end(self, end: TelemetryEvent) -> None:
        """Close what is open at the run's end."""
        for span in self.stages.values():  # a stage the run never finished ends with it
            self._ended(span, _ns(end.timestamp))
        failed = end.event != "run_completed"
        self._ended(self.run, _ns(end.timestamp), end.event if failed else None)


def export_metrics(
    events: Iterable[TelemetryEvent], exporter: Any = None, timeout_s: float = 10.0
) -> int:
    """The run's requests as OTLP metrics: ``crucible.requests`` (a count, by variant, model
    and outcome, each kept event standing for 1 / sampling_rate), ``crucible.request.duration``
    (a histogram in ms), ``crucible.request.cost`` and ``crucible.request.tokens``; the number
    of request events read."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    requests = [e for e in events if e.event == "request"]
    if not requests:
        return 0
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(timeout=timeout_s)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=_resource(requests[0]), metric_readers=[reader])
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
    provider.shutdown(timeout_millis=timeout_s * 1000)  # collects and exports once
    return len(requests)
