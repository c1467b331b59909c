"""The circuit breaker (``reliability.circuit_breaker``): its states on a clock the test moves,
then a backend against the local chat completions server's injected failures, with a fallback
backend taking the samples the open circuit refused."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from crucible_dagster.backends.base import FallbackBackend, Guarded, Request
from crucible_dagster.backends.circuit import CircuitBreaker, CircuitOpen
from crucible_dagster.backends.openai_compatible import OpenAICompatibleBackend
from crucible_dagster.backends.registry import build_backend
from crucible_dagster.cli import main
from crucible_dagster.contrib.llm_server import llm_server
from crucible_dagster.experiment.ir import BackendRef
from crucible_dagster.experiment.ir import CircuitBreaker as Settings
from crucible_dagster.telemetry import recording


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, **settings: Any) -> CircuitBreaker:
    return CircuitBreaker(Settings.model_validate(settings), "primary", clock=clock)


def events() -> tuple[list[tuple[str, dict[str, Any]]], Any]:
    seen: list[tuple[str, dict[str, Any]]] = []
    return seen, recording(lambda event, **fields: seen.append((event, fields)))


def test_it_opens_at_the_threshold_within_the_window_only() -> None:
    clock = Clock()
    b = breaker(clock, failure_threshold=2, window=4)
    for failed in (True, False, False, False, False, True):  # the first failure left the window
        b.before()
        b.settle(failed)
    assert b.state == "closed"
    b.before()
    b.settle(True)  # two of the last four
    assert b.state == "open"
    with pytest.raises(CircuitOpen, match=r"'primary' is open \(2 or more of the last 4 requests"):
        b.before()


def test_after_the_reset_timeout_probes_close_it_or_open_it_again() -> None:
    clock = Clock()
    b = breaker(clock, failure_threshold=1, window=5, reset_timeout_s=10, half_open_requests=2)
    seen, bound = events()
    with bound:
        b.before()
        b.settle(True)
        clock.now += 9.9
        with pytest.raises(CircuitOpen, match=r"a probe is let through in 0\.1 s"):
            b.before()
        clock.now += 0.1
        b.before()
        b.before()  # two probes in flight
        assert b.state == "half_open"
        with pytest.raises(CircuitOpen, match="half-open and its 2 probe request"):
            b.before()
        b.settle(False)
        b.settle(True)  # the second probe failed: open again, for another 10 s
        assert b.state == "open"
        clock.now += 10
        b.before()
        b.settle(None)  # not sent after all (the budget refused it): its probe is free again
        b.before()
        b.before()
        b.settle(False)
        b.settle(False)
        assert b.state == "closed"
        b.before()
        b.settle(True)  # a fresh window: one failure (threshold 1) opens it
    assert b.state == "open"
    assert [event for event, _ in seen] == [
        "circuit_opened",
        "circuit_half_open",
        "circuit_opened",
        "circuit_half_open",
        "circuit_closed",
        "circuit_opened",
    ]
    assert seen[0][1] == {
        "provider": "primary",
        "model": None,
        "count": 1,
        "message": "1 of the last 1 requests failed; no request for 10 s",
    }


def guarded(backend: Any) -> Guarded:
    assert isinstance(backend, Guarded)
    return backend


def _backend(primary: str, backup: str) -> Any:
    options = {"cache": False, "max_retries": 0, "concurrency": 1}
    backend = guarded(
        build_backend(
            BackendRef.model_validate(
                {
                    "id": "openai_compatible",
                    "endpoint_url": primary,
                    "options": {"model": "primary", **options},
                    "fallback": {
                        "id": "openai_compatible",
                        "endpoint_url": backup,
                        "options": {"model": "backup", **options},
                    },
                }
            )
        )
    )
    settings = {"failure_threshold": 3, "window": 10, "reset_timeout_s": 0.3}
    return backend.with_circuit_breaker(Settings.model_validate(settings))


def test_an_open_circuit_fails_fast_the_fallback_answers_and_a_probe_closes_it() -> None:
    """The primary's server fails every request: after 3 the circuit opens, the other 7
    samples are not sent to it (the fallback answers all 10); once the server is well and
    reset_timeout_s has passed, a probe closes the circuit and the primary answers again."""
    questions = [Request(f"q{i}", f"{i}+1") for i in range(10)]
    seen, bound = events()
    with llm_server() as (primary, down), llm_server() as (backup, up), bound:
        backend = _backend(primary, backup)
        down.fail_next(1000, status=503)
        answers = backend.predict(questions)
        assert down.requests["primary"] == 3  # the requests sent before it opened
        assert len(down.failures) == 1000 - 3
        assert [a.output for a in answers] == [str(i + 1) for i in range(10)]
        assert up.requests["backup"] == 10
        down.failures.clear()
        time.sleep(0.35)
        again = backend.predict([Request("r1", "2+2"), Request("r2", "3+3")])
    assert [a.output for a in again] == ["4", "6"]
    assert up.requests["backup"] == 10  # the primary answered both
    assert [event for event, _ in seen] == ["circuit_opened", "circuit_half_open", "circuit_closed"]


def test_open_circuit_errors_name_the_breaker_without_a_fallback() -> None:
    with llm_server() as (url, server):
        backend = guarded(
            build_backend(
                BackendRef.model_validate(
                    {
                        "id": "openai_compatible",
                        "endpoint_url": url,
                        "options": {
                            "model": "m",
                            "cache": False,
                            "max_retries": 2,
                            "backoff_s": 0,
                            "concurrency": 1,
                        },
                    }
                )
            )
        ).with_circuit_breaker(Settings(failure_threshold=2, window=5, reset_timeout_s=60))
        server.fail_next(1000, status=500)
        seen, bound = events()
        with bound:
            first, second = backend.predict([Request("a", "1+1"), Request("b", "2+2")])
    # the first sample's first try and first retry open it: it keeps the server's answer, and
    # its last retry is neither sent nor recorded as a retry (outsider attack)
    assert server.requests["m"] == 2
    assert first.output is None and first.error == f"HTTP 500 from {url}/chat/completions"
    assert [event for event, _ in seen].count("retry") == 1
    assert second.output is None
    assert "circuit breaker of backend 'openai_compatible' is open" in (second.error or "")
    assert "reliability.circuit_breaker.reset_timeout_s 60" in (second.error or "")


def test_a_breaker_without_a_backend_that_sends_requests_is_refused_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "guarded.yaml"
    path.write_text(
        "id: guarded\n"
        "reliability:\n"
        "  circuit_breaker: {failure_threshold: 3}\n"
        "pipeline:\n"
        "  - name: predict\n"
        "    options:\n"
        "      variants: {m: {id: sklearn}}\n"
    )
    assert main(["validate", str(path)]) == 1
    assert (
        f"{path}:3: reliability.circuit_breaker: set, but no backend of a predict stage sends "
        "requests it could stop" in capsys.readouterr().out
    )
    path.write_text(
        path.read_text().replace(
            "{m: {id: sklearn}}", "{m: {id: openai_compatible, options: {model: x}}}"
        )
    )
    assert main(["validate", str(path)]) == 0


def test_a_runs_telemetry_records_the_circuits_changes(tmp_path: Path, artifacts_dir: Path) -> None:
    """A run through the plain runner: the predict stage's backend gets the experiment's
    breaker; the server down for its first 4 requests opens it (threshold 2, no retries), the
    other samples fail fast, and telemetry.jsonl holds the change, valid against the schema."""
    from crucible_dagster.runtime.runner import run
    from crucible_dagster.telemetry.events import read_events
    from tests.test_telemetry import chat_experiment

    with llm_server() as (url, server):
        server.fail_next(4, status=503)
        experiment = chat_experiment(
            "guarded",
            url,
            count=6,
            options={"max_retries": 0, "concurrency": 1},
            reliability={"circuit_breaker": {"failure_threshold": 2, "reset_timeout_s": 60}},
        )
        result = run(experiment)
    assert server.requests["m"] == 2  # the rest were never sent
    assert result.status == "completed", result.failure
    events, problems = read_events(Path(str(result.run_dir)) / "telemetry.jsonl")
    assert problems == []
    (opened,) = [e for e in events if e.event == "circuit_opened"]
    assert (opened.stage, opened.provider, opened.model, opened.count) == (
        "predict",
        "openai_compatible",
        "m",
        2,
    )
    failed = [e for e in events if e.event == "request" and not e.success]
    assert len(failed) == 6


def test_a_breaker_for_a_fallback_that_sends_requests_is_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The primary is no model (noop) and its fallback sends requests: the fallback's breaker
    is what the setting acts on (outsider attack: validate refused it)."""
    path = tmp_path / "fallback.yaml"
    path.write_text(
        "id: fallback\n"
        "backend:\n"
        "  id: noop\n"
        "  fallback: {id: openai_compatible, endpoint_url: 'http://127.0.0.1:9/v1', "
        "options: {model: x}}\n"
        "reliability:\n"
        "  circuit_breaker: {failure_threshold: 3}\n"
        "pipeline: [{name: predict}]\n"
    )
    assert main(["validate", str(path)]) == 0, capsys.readouterr().out
    backend = guarded(
        build_backend(
            BackendRef.model_validate(
                {"id": "noop", "fallback": {"id": "openai_compatible",
                 "endpoint_url": "http://127.0.0.1:9/v1", "options": {"model": "x"}}}
            )
        )
    )  # fmt: skip
    backend.with_circuit_breaker(Settings(failure_threshold=3))
    assert isinstance(backend, FallbackBackend)
    assert isinstance(backend.fallback, OpenAICompatibleBackend)
    assert backend.fallback.breaker is not None
