"""Rate limits as the server sees them: the interval between the requests a backend sends
under ``requests_per_minute`` and ``tokens_per_minute``, beside the interval the rate asks for.

A rate is a matter of the clock, so it is measured here rather than asserted in a test (the
tests check the token bucket's arithmetic on a clock they move). Each side sends batches of
10 requests, as predict stages would, for ``WINDOW_S`` seconds at 8 at a time to the test
suite's OpenAI-compatible server (real HTTP on 127.0.0.1); the figure is the mean interval
between the first and the last request the server received.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.harness import Row, Timing
from crucible_dagster.backends.base import Request
from crucible_dagster.backends.registry import build_backend
from crucible_dagster.contrib.llm_server import llm_server
from crucible_dagster.experiment.ir import BackendRef

WINDOW_S = 30.0
PROMPT = "a b c d e f g h i j"  # 10 words in, 'echo: a ... j N' back: 23 tokens a request


def _interval_s(options: dict[str, Any]) -> float:
    """The mean seconds between requests at the server over ``WINDOW_S``."""
    with llm_server() as (url, server):
        arrivals: list[float] = []
        server.script = lambda number, body: arrivals.append(time.monotonic())
        ref = BackendRef(
            id="openai_compatible",
            endpoint_url=url,
            options={"model": "m", "cache": False, "tokenizer": "words", "concurrency": 8}
            | options,
        )
        backend = build_backend(ref)
        deadline = time.monotonic() + WINDOW_S
        batch = 0
        while time.monotonic() < deadline:
            requests = [Request(f"{batch}-{i}", f"{PROMPT} {i}") for i in range(10)]
            answers = backend.predict(requests)
            assert not any(a.error for a in answers), [a.error for a in answers if a.error]
            batch += 1
    return (arrivals[-1] - arrivals[0]) / (len(arrivals) - 1)


def rate_rows() -> list[Row]:
    print(
        f"settings: {WINDOW_S:.0f} s per limit, batches of 10 requests, concurrency 8, no cache; "
        "the tokens side counts 23 tokens a request (expected_completion_tokens 11)"
    )
    requests = _interval_s({"requests_per_minute": 120})
    tokens = _interval_s({"tokens_per_minute": 2520, "expected_completion_tokens": 11})
    return [
        Row(
            "interval between requests, requests_per_minute 120",
            Timing.fixed(requests),
            Timing.fixed(60 / 120),
            "the interval the rate asks for",
            "1x (within 10%)",
        ),
        Row(
            "interval between requests, tokens_per_minute 2520 (23 tokens each)",
            Timing.fixed(tokens),
            Timing.fixed(23 * 60 / 2520),
            "the interval the rate asks for",
            "1x (within 10%)",
            note="the first request's tokens are the bucket's own",
        ),
    ]
