"""Hedged requests (Dean & Barroso, "The Tail at Scale", CACM 2013): when an answer is late,
send the same request again and take whichever answer comes first.

When to hedge, by ``reliability.hedging.strategy``:

- ``off``: never.
- ``fixed``: after ``delay_ms`` (default 100).
- ``percentile``: after the ``percentile``-th (default 95) latency observed so far; no hedge
  until ``options.min_samples`` (default 20) requests have completed.
- ``adaptive``: after the latency quantile that leaves ``budget_percent`` (default 5) of
  requests slower, so the hedge rate tracks the budget as the latency distribution moves.
- ``workload_aware``: the percentile delay stretched by the load, ``x (1 + in_flight /
  options.capacity)`` (capacity default 8): under load a duplicate costs more, so wait longer.
- ``exponential_backoff``: hedge k after ``delay_ms * 2**(k - 1)`` more.

``max_hedges`` (default 1) caps duplicates per request and ``budget_percent`` the share of
extra requests over all requests (no cap when unset, except for ``adaptive``'s own target).
The budget is asked when a hedge is due, and again every few milliseconds while it is spent:
it grows with every request, and a stalled request is the one a hedge is for. While it is
spent, the room it makes goes to the request whose hedge fell due first (the likeliest
straggler), not to whichever request asks next.
Every request's own latency (losers' too, when they finish) feeds the estimates.
"""

from __future__ import annotations

import contextvars
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from crucible_dagster.experiment.ir import Hedging, HedgingOptions
from crucible_dagster.telemetry import record

T = TypeVar("T")
DEFAULT_DELAY_MS = 100.0
DEFAULT_PERCENTILE = 95.0
DEFAULT_BUDGET_PERCENT = 5.0
MAX_THREADS = 256
BUDGET_RECHECK_S = 0.005


def quantile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation (numpy's default), without numpy."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class HedgedCaller:
    """Calls a function with hedging; thread-safe, shared by all of a backend's requests."""

    def __init__(self, config: Hedging, window: int = 2000):
        self.config = config
        options = config.options or HedgingOptions()  # checked by the IR: no key unread
        self.min_samples = options.min_samples
        self.capacity = options.capacity
        self.max_hedges = config.max_hedges if config.max_hedges is not None else 1
        self._latencies: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self.primaries = 0
        self.hedges = 0
        self.hedge_wins = 0
        self.in_flight = 0
        self._refused: dict[int, float] = {}  # request -> when its hedge fell due, budget spent

    # --- the policy ----------------------------------------------------------------------------

    def _observed(self, q: float) -> float | None:
        with self._lock:
            values = list(self._latencies)
        if len(values) < self.min_samples:
            return None
        return quantile(values, q)

    def delay_ms(self, hedge: int) -> float | None:
        """How long after the previous request hedge number ``hedge`` (1-based) goes, or None."""
        strategy, c = self.config.strategy, self.config
        if strategy == "off" or hedge > self.max_hedges:
            return None
        if strategy == "fixed":
            return float(c.delay_ms if c.delay_ms is not None else DEFAULT_DELAY_MS)
        if strategy == "exponential_backoff":
            base = float(c.delay_ms if c.delay_ms is not None else DEFAULT_DELAY_MS)
            return base * 2 ** (hedge - 1)
        if strategy == "adaptive":
            budget = c.budget_percent if c.budget_percent is not None else DEFAULT_BUDGET_PERCENT
            return self._observed(1 - budget / 100)
        observed = self._observed((c.percentile or DEFAULT_PERCENTILE) / 100)
        if observed is None or strategy == "percentile":
            return observed
        return observed * (1 + self.in_flight / self.capacity)  # workload_aware

    def _take_budget(self, request: int, due: float) -> bool:
        """Count one hedge for ``request`` (its hedge due since ``due``) if the budget has room
        and no request refused earlier is still waiting; checked and counted atomically."""
        budget = self.config.budget_percent
        with self._lock:
            if budget is not None:
                due = self._refused.get(request, due)
                first = min(self._refused.values(), default=due)
                if self.hedges >= budget / 100 * max(self.primaries, 1) or due > first:
                    self._refused[request] = due
                    return False
            self._refused.pop(request, None)
            self.hedges += 1
            return True

    # --- the call ------------------------------------------------------------------------------

    def _submit(self, fn: Callable[[], T]) -> Future[T]:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    # a request never waits for a thread: a queued hedge would be a late hedge
                    self._pool = ThreadPoolExecutor(
                        MAX_THREADS, thread_name_prefix="crucible-hedge"
                    )
        began = time.perf_counter()

        def timed() -> T:
            try:
                return fn()
            finally:
                with self._lock:
                    self._latencies.append((time.perf_counter() - began) * 1000)

        # in the caller's context: a retry inside is recorded in the running stage's telemetry
        return self._pool.submit(contextvars.copy_context().run, timed)

    def call(self, fn: Callable[[], T]) -> tuple[T, int]:
        """``fn()``'s first successful answer and how many hedges were sent for it."""
        if self.config.strategy == "off":
            return self._submit(fn).result(), 0
        with self._lock:
            self.primaries += 1
            self.in_flight += 1
            request = self.primaries
        try:
            return self._race(fn, request)
        finally:
            with self._lock:
                self.in_flight -= 1
                self._refused.pop(request, None)

    def _race(self, fn: Callable[[], T], request: int) -> tuple[T, int]:
        futures = [self._submit(fn)]
        pending: set[Future[T]] = set(futures)
        last_sent = time.perf_counter()
        error: BaseException | None = None
        hedge_refused = False
        while True:
            delay = self.delay_ms(len(futures))
            timeout = (
                None if delay is None else max(0.0, last_sent + delay / 1000 - time.perf_counter())
            )
            if timeout == 0.0 and hedge_refused:  # due, but the budget was spent a moment ago
                timeout = BUDGET_RECHECK_S
            done, pending = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
            for future in done:
                if future.exception() is None:
                    if future is not futures[0]:
                        with self._lock:
                            self.hedge_wins += 1
                    for number, sent in enumerate(futures[1:], start=1):
                        record("hedge", attempt=number, won=sent is future)
                    return future.result(), len(futures) - 1
                error = error or future.exception()
            if not done:  # the wait ran out: a hedge is due
                due = last_sent + (delay or 0.0) / 1000
                hedge_refused = not self._take_budget(request, due)
                if not hedge_refused:
                    futures.append(self._submit(fn))
                    pending.add(futures[-1])
                    last_sent = time.perf_counter()
            elif not pending:
                assert error is not None
                raise error

    def summary(self) -> dict[str, Any]:
        with self._lock:
            primaries, hedges, wins = self.primaries, self.hedges, self.hedge_wins
        return {
            "strategy": self.config.strategy,
            "requests": primaries,
            "hedges": hedges,
            "hedge_wins": wins,
            "extra_request_share": hedges / primaries if primaries else 0.0,
        }
