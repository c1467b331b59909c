"""Issue 27 figures: what request telemetry costs a run, and how fast the writer appends.

Cost: the predict stage answering 10,000 requests from the bundled server (in its own
process, response cache off, 8 in flight), with its request events recorded to the run's
``telemetry.jsonl`` against the same stage with no run recording (goal <= 1.03x). The only
setting that differs is whether the stage runs inside ``recording(...)``; logging is as a run
leaves it on both sides. Throughput: 100,000 request events through ``EventWriter`` (one
``write`` per line on an O_APPEND file, safe across processes) against Python's buffered
``open(..., "a").write`` of the same lines (safe in one process only).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from benchmarks.harness import Row, paired
from benchmarks.predict_bench import CONCURRENCY, _context, _server

REQUESTS = 10_000
EVENTS = 100_000


def cost_rows() -> list[Row]:
    from crucible_dagster.runtime.telemetry import JsonlSink, Telemetry
    from crucible_dagster.telemetry import recording

    proc, url = _server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            stage, options, ctx = _context(url, Path(tmp), REQUESTS)
            sink = JsonlSink(Path(tmp) / "telemetry.jsonl")
            telemetry = Telemetry([sink], experiment_id="bench", run_id="bench")

            def on() -> None:
                with recording(telemetry.record, stage="predict"):
                    assert len(stage.run(ctx, options).assigns["predictions"]) == REQUESTS

            def off() -> None:
                assert len(stage.run(ctx, options).assigns["predictions"]) == REQUESTS

            a, b, others = paired(on, off, repeats=3)
            lines = sum(1 for _ in (Path(tmp) / "telemetry.jsonl").open())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(
        f"settings: {REQUESTS} requests, {CONCURRENCY} in flight, the bundled server in its own "
        f"process, response cache off, Python logging unconfigured on both; one side records a "
        f"request event per answer ({lines} lines written over all its runs), the other none"
    )
    return [
        Row(
            f"predict stage, {REQUESTS} requests, request events on",
            a,
            b,
            "the same with events off",
            "<= 1.03x",
            others,
        )
    ]


def _event(n: int) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": f"{n:032x}",
        "event": "request",
        "timestamp": "2026-12-03T09:00:00+00:00",
        "experiment_id": "bench",
        "run_id": "bench",
        "stage": "predict",
        "variant": "model",
        "sample_id": f"q{n}",
        "model": "qa-large",
        "provider": "openai_compatible",
        "latency_ms": 12.5,
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "cost": 0.0004,
        "success": True,
        "cached": False,
        "extra_requests": 0,
    }


def writer_rows() -> list[Row]:
    import json

    from crucible_dagster.common.jsonsafe import to_jsonable
    from crucible_dagster.telemetry.writer import EventWriter

    events = [_event(n) for n in range(EVENTS)]
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(10**6))

        def ours() -> None:
            write = EventWriter(Path(tmp) / f"ours{next(counter)}.jsonl")
            for event in events:
                write(event)
            write.close()

        def buffered() -> None:
            with open(Path(tmp) / f"base{next(counter)}.jsonl", "a", encoding="utf-8") as out:
                for event in events:
                    out.write(json.dumps(to_jsonable(event), sort_keys=True) + "\n")

        a, b, others = paired(ours, buffered, repeats=3)
    rate = EVENTS / a.median
    print(f"settings: {EVENTS} request events per side; EventWriter: {rate:,.0f} events/s")
    return [
        Row(
            f"EventWriter, {EVENTS} events ({rate:,.0f} events/s)",
            a,
            b,
            "buffered open(..., 'a').write",
            "report",
            others,
        )
    ]
