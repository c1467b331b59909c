"""Rate limits: the token bucket's arithmetic on a clock the test moves, and a waiting request
let go when its batch is interrupted. The rate the server sees over 30 s is a figure of
benchmarks/rate_limit_bench.py (a rate is a matter of the clock: no test asserts one)."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest

from crucible_dagster.backends.base import Request
from crucible_dagster.backends.rate_limit import RateLimitClosed, RateLimiter, TokenBucket
from crucible_dagster.backends.registry import build_backend
from crucible_dagster.contrib.llm_server import llm_server
from crucible_dagster.experiment.ir import BackendRef


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_holds_one_second_and_refills_at_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(120, clock)  # 2 a second
    assert bucket.capacity == 2
    for _ in range(2):
        assert bucket.wait_s(1) == 0
        bucket.take(1)
    assert bucket.wait_s(1) == pytest.approx(0.5)
    clock.now += 10  # idle: the bucket fills to its capacity, no further
    bucket.refill()
    assert bucket.level == 2


def test_a_slow_rate_still_sends_and_a_large_request_goes_into_debt() -> None:
    clock = Clock()
    slow = TokenBucket(6, clock)  # one every 10 s: the bucket holds one request
    assert slow.capacity == 1 and slow.wait_s(1) == 0
    tokens = TokenBucket(600, clock)  # 10 tokens a second, 10 held
    assert tokens.wait_s(50) == 0  # larger than the bucket: goes when it is full
    tokens.take(50)
    assert tokens.wait_s(1) == pytest.approx(4.1)  # 40 in debt, then one more


def test_settling_with_the_servers_count_moves_the_bucket() -> None:
    limiter = RateLimiter(None, 600)
    assert limiter.tokens is not None
    limiter.acquire(5)
    before = limiter.tokens.level
    limiter.settle(5, 25)  # the server counted 20 more than estimated
    assert limiter.tokens.level == pytest.approx(before - 20, abs=0.5)


def test_a_closed_limiter_lets_its_waiting_threads_go_unsent() -> None:
    limiter = RateLimiter(1, None)  # one a minute: the second waits a minute
    limiter.acquire()
    failures: list[BaseException] = []

    def second() -> None:
        try:
            limiter.acquire()
        except RateLimitClosed as exc:
            failures.append(exc)

    waiter = threading.Thread(target=second)
    waiter.start()
    time.sleep(0.1)
    limiter.close()
    waiter.join(timeout=30)
    assert not waiter.is_alive()
    assert len(failures) == 1 and "not sent" in str(failures[0])


def openai(url: str, **options: Any) -> Any:
    ref = BackendRef(
        id="openai_compatible",
        endpoint_url=url,
        options={"model": "m", "cache": False, "tokenizer": "words", **options},
    )
    return build_backend(ref)


@pytest.mark.slow
def test_an_interrupt_while_requests_wait_for_the_rate_ends_the_batch() -> None:
    """Ctrl-C with 20 requests paced at one a minute: the batch stops at once (the waiting
    threads are let go), not after twenty minutes; two requests were sent."""
    # a shell's background job (make test-fast &) starts with SIGINT ignored: the interrupt
    # would never come and the batch would wait out its twenty minutes
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    with llm_server() as (url, server):
        backend = openai(url, requests_per_minute=1, concurrency=4)
        timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                backend.predict([Request(str(i), f"{i}+1") for i in range(20)])
        finally:
            timer.cancel()
            signal.signal(signal.SIGINT, previous)
        assert sum(server.requests.values()) == 1  # the one the bucket held; nothing after


def test_a_wait_for_the_rate_is_a_telemetry_event() -> None:
    """Issue 27: a request that waited for its turn says how long, in the running stage."""
    from crucible_dagster.telemetry import recording

    limiter = RateLimiter(600, None)  # 10 requests a second, 10 held
    events: list[tuple[str, dict[str, object]]] = []
    with recording(lambda event, **fields: events.append((event, fields)), stage="predict"):
        for _ in range(12):
            limiter.acquire()
    waits = [fields for event, fields in events if event == "rate_limit_wait"]
    assert len(waits) == 2  # the two past the bucket's ten
    assert all(float(str(w["wait_ms"])) >= 1 for w in waits)  # how long is a benchmark's to say
    assert {w["stage"] for w in waits} == {"predict"}
