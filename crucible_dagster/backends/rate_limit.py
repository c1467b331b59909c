"""Request and token rate limits: token buckets shared by every thread of one backend instance.

``requests_per_minute`` and ``tokens_per_minute`` on a backend that sends requests: each HTTP
request (a retry and a hedge too: each is a request the server counts) takes one request
token and its estimated tokens before it is sent, and waits while a bucket is empty.

Why these buckets: a bucket holds at most one second's worth (never less than one request, so
a slow rate still sends), so the rate over any window longer than a few seconds is the one
asked for: a full minute's burst at the start would double the rate a 30 s window sees. A
request's tokens are only estimated before it is sent; the answer's ``usage`` settles the
difference afterwards (the bucket may go below zero, and later requests wait it out), so over
time the tokens counted are the server's own.

A waiting thread gives up when the limiter is closed (the batch was interrupted): an
interrupt never waits for the queue of requests still to be paced.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from crucible_dagster.telemetry import record

#: a wait shorter than this is the lock's, not the rate's: not a telemetry event
MIN_RECORDED_WAIT_S = 0.001
#: the longest one wait for the condition lasts (a longer one overflows the platform's clock)
MAX_WAIT_S = 3600.0


class RateLimitClosed(RuntimeError):
    """The limiter was closed while this request waited for its turn: it was not sent."""


class TokenBucket:
    """``rate_per_minute`` tokens a minute, at most ``capacity`` held; not thread-safe alone
    (``RateLimiter`` holds the lock)."""

    def __init__(self, rate_per_minute: float, clock: Callable[[], float] = time.monotonic):
        if not rate_per_minute > 0:
            raise ValueError(f"expected a rate > 0 per minute, found {rate_per_minute!r}")
        self.rate_s = rate_per_minute / 60.0
        self.capacity = max(1.0, self.rate_s)  # one second's worth, at least one
        self.level = self.capacity
        self._clock = clock
        self._at = clock()

    def refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._at) * self.rate_s)
        self._at = now

    def wait_s(self, amount: float) -> float:
        """Seconds until ``amount`` may be taken (0: now). A request larger than the bucket
        goes once the bucket is full, and leaves it in debt."""
        self.refill()
        need = min(amount, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate_s

    def take(self, amount: float) -> None:
        self.level -= amount


class RateLimiter:
    """The request and token buckets of one backend instance, shared by its threads."""

    def __init__(
        self,
        requests_per_minute: float | None,
        tokens_per_minute: float | None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.requests = TokenBucket(requests_per_minute, clock) if requests_per_minute else None
        self.tokens = TokenBucket(tokens_per_minute, clock) if tokens_per_minute else None
        self._changed = threading.Condition()
        self._closed = False
        #: seconds threads spent waiting for their turn (reported with the stage's metrics)
        self.waited_s = 0.0

    @property
    def active(self) -> bool:
        return self.requests is not None or self.tokens is not None

    def _wait_s(self, tokens: int) -> float:
        waits = [0.0]
        if self.requests is not None:
            waits.append(self.requests.wait_s(1))
        if self.tokens is not None:
            waits.append(self.tokens.wait_s(tokens))
        return max(waits)

    def acquire(self, tokens: int = 0) -> None:
        """Wait for one request and ``tokens`` tokens, then take them; ``RateLimitClosed``
        when the limiter is closed meanwhile."""
        if not self.active:
            return
        began = time.monotonic()
        with self._changed:
            while True:
                if self._closed:
                    raise RateLimitClosed("not sent: the batch was stopped while it waited")
                wait = self._wait_s(tokens)
                if wait <= 0:
                    break
                self._changed.wait(min(wait, MAX_WAIT_S))  # then looks again
            if self.requests is not None:
                self.requests.take(1)
            if self.tokens is not None:
                self.tokens.take(tokens)
            waited = time.monotonic() - began
            self.waited_s += waited
        if waited >= MIN_RECORDED_WAIT_S:  # outside the lock: the file write waits for no one
            record("rate_limit_wait", wait_ms=waited * 1000, prompt_tokens=tokens or None)

    def settle(self, estimated: int, actual: int | None) -> None:
        """The answer's own token count replaces the estimate taken before sending it."""
        if self.tokens is None or actual is None or actual == estimated:
            return
        with self._changed:
            self.tokens.refill()
            self.tokens.take(actual - estimated)
            self._changed.notify_all()

    def close(self) -> None:
        """Wake every waiting thread with ``RateLimitClosed``: nothing more is sent."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def reopen(self) -> None:
        """A new batch on the same backend may send again."""
        with self._changed:
            self._closed = False
