"""OpenTelemetry export (issue 27): a run's trace over OTLP/HTTP to a receiver the test starts
on 127.0.0.1, decoded with OpenTelemetry's own protobuf messages: the run span, a span per
stage under it, a span per request under its stage with the event's attributes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra")


class Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.bodies: list[bytes] = []
        self.paths: list[str] = []


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.bodies.append(body)
        self.server.paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    monkeypatch.setenv("CRUCIBLE_OTEL", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def spans_received(receiver: Receiver) -> list[Any]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    spans = []
    for body in traces_of(receiver):
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                spans += list(scope.spans)
    return spans


def traces_of(receiver: Receiver) -> list[bytes]:
    return [b for b, p in zip(receiver.bodies, receiver.paths, strict=True) if p == "/v1/traces"]


def metrics_received(receiver: Receiver) -> dict[str, Any]:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    found = {}
    for body, path in zip(receiver.bodies, receiver.paths, strict=True):
        if path != "/v1/metrics":
            continue
        request = ExportMetricsServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found[metric.name] = metric
    return found


def attributes(span: Any) -> dict[str, Any]:
    found = {}
    for item in span.attributes:
        value = item.value
        found[item.key] = getattr(value, value.WhichOneof("value"))
    return found


@pytest.mark.slow  # the OpenTelemetry SDK's import and a run with HTTP round trips
def test_a_run_arrives_as_a_span_tree(receiver: Receiver, artifacts_dir: Path) -> None:
    from crucible_dagster.contrib.llm_server import llm_server
    from crucible_dagster.runtime.runner import run
    from tests.test_telemetry import chat_experiment

    with llm_server() as (url, server):
        server.fail_next(1, status=503)
        experiment = chat_experiment("traced", url, count=3)
        result = run(experiment)
    assert result.status == "completed", result.failure
    assert set(receiver.paths) == {"/v1/traces", "/v1/metrics"}
    spans = spans_received(receiver)
    by_name: dict[str, list[Any]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    (root,) = by_name["run traced"]
    assert root.parent_span_id == b""
    stages = {name: spans[0] for name, spans in by_name.items() if name.startswith("stage ")}
    assert set(stages) == {"stage seed", "stage predict"}
    assert all(s.parent_span_id == root.span_id for s in stages.values())
    requests = by_name["request model"]
    assert len(requests) == 3
    assert {r.parent_span_id for r in requests} == {stages["stage predict"].span_id}
    assert len({r.trace_id for r in spans}) == 1
    first = attributes(requests[0])
    assert (
        first["gen_ai.request.model"] == "m" and first["crucible.provider"] == "openai_compatible"
    )
    assert first["gen_ai.usage.input_tokens"] > 0 and first["crucible.success"] is True
    for request in requests:  # each inside its stage, lasting its recorded latency
        assert stages["stage predict"].start_time_unix_nano <= request.start_time_unix_nano
        assert request.end_time_unix_nano <= stages["stage predict"].end_time_unix_nano
    retries = [e for e in stages["stage predict"].events if e.name == "retry"]
    assert len(retries) == 1 and attributes(retries[0])["crucible.error_kind"] == "http_503"
    metrics = metrics_received(receiver)
    assert {"crucible.requests", "crucible.request.duration", "crucible.request.cost",
            "crucible.request.tokens"} <= set(metrics)  # fmt: skip
    counted = metrics["crucible.requests"].sum.data_points
    assert sum(point.as_double or point.as_int for point in counted) == 3
    (histogram,) = metrics["crucible.request.duration"].histogram.data_points
    assert histogram.count == 3 and attributes(histogram)["gen_ai.request.model"] == "m"


def test_off_by_default_and_a_bad_setting_is_refused_before_the_run(
    monkeypatch: pytest.MonkeyPatch, artifacts_dir: Path
) -> None:
    from crucible_dagster import Experiment
    from crucible_dagster.runtime.runner import run
    from crucible_dagster.telemetry.otlp import OtlpSetupError, otlp_enabled

    monkeypatch.delenv("CRUCIBLE_OTEL", raising=False)
    assert not otlp_enabled()
    monkeypatch.setenv("CRUCIBLE_OTEL", "jaeger")
    with pytest.raises(OtlpSetupError, match="CRUCIBLE_OTEL: expected otlp or off, got 'jaeger'"):
        run(Experiment.model_validate({"id": "x", "pipeline": [{"name": "validate"}]}))
    assert not (artifacts_dir / "x").exists()  # refused before any run directory


@pytest.mark.slow  # waits out an export deadline
def test_an_unreachable_collector_never_fails_the_run(
    monkeypatch: pytest.MonkeyPatch, artifacts_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    from crucible_dagster import Experiment
    from crucible_dagster.runtime.runner import run

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("CRUCIBLE_OTEL", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    result = run(Experiment.model_validate({"id": "x", "pipeline": [{"name": "validate"}]}))
    assert result.status == "completed"
    # said once: refused at once ("failed"), or retried until the deadline ("did not finish")
    said = [r.getMessage() for r in caplog.records if "OTLP export" in r.getMessage()]
    assert len(said) == 1 and ("failed" in said[0] or "did not finish" in said[0]), said


@pytest.mark.slow  # waits out an export deadline
def test_a_collector_that_hangs_costs_the_deadline_and_the_record_is_final_first(
    monkeypatch: pytest.MonkeyPatch, artifacts_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Attack finding: a collector that accepts and never answers held the run open for
    minutes with its manifest not final. The record is final before the export starts, and
    the export is abandoned at OTEL_EXPORTER_OTLP_TIMEOUT, said once."""
    import json
    import socket

    from crucible_dagster import Experiment
    from crucible_dagster.runtime.runner import run

    with socket.socket() as listener:  # accepts connections, answers nothing
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        monkeypatch.setenv("CRUCIBLE_OTEL", "otlp")
        monkeypatch.setenv(
            "OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{listener.getsockname()[1]}"
        )
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
        result = run(Experiment.model_validate({"id": "x", "pipeline": [{"name": "validate"}]}))
    assert result.status == "completed"
    manifest = json.loads((Path(str(result.run_dir)) / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    said = [r.getMessage() for r in caplog.records if "OTLP export" in r.getMessage()]
    assert len(said) == 1 and "did not finish within 1 s" in said[0], said


@pytest.mark.parametrize("value", ["OTLP", "1", "true", " otlp", "yes"])
def test_crucible_otel_has_one_spelling(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from crucible_dagster.telemetry.otlp import OtlpSetupError, otlp_enabled

    monkeypatch.setenv("CRUCIBLE_OTEL", value)
    with pytest.raises(OtlpSetupError, match="expected otlp or off"):
        otlp_enabled()
