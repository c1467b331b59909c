"""A circuit breaker for a backend that sends requests (``reliability.circuit_breaker``).

A backend whose service is down should not spend every sample's retries and timeouts finding
out again: after ``failure_threshold`` failed requests among the last ``window`` it sent, the
circuit *opens* and every request fails at once (that sample's error, which a fallback backend
then answers) for ``reset_timeout_s``. Then it is *half-open*: up to ``half_open_requests``
requests go through as a probe; if they all succeed it *closes* (the window starts afresh), a
failed one opens it again. Each change of state is a telemetry event (``circuit_opened``,
``circuit_half_open``, ``circuit_closed``).

A failure is what says the service is unwell: a request that failed in a way worth retrying
(a connection refused or reset, a timeout, HTTP 429 or 5xx). A refusal of the request itself
(HTTP 400, a malformed answer) is the service answering, and counts as a success. The window
counts HTTP requests, retries and hedges included. The state is one backend's in one process:
each Dagster step process, or Celery worker, keeps its own.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from crucible_dagster.experiment.ir import CircuitBreaker as CircuitSettings
from crucible_dagster.telemetry import record

State = Literal["closed", "open", "half_open"]


class CircuitOpen(RuntimeError):
    """A request refused without being sent: the circuit is open."""


@dataclass
class CircuitBreaker:
    """One backend's breaker; thread-safe (hedged requests and concurrent samples share it)."""

    settings: CircuitSettings
    backend: str
    #: the model it asks (telemetry's ``model``): two variants of one backend differ by it
    model: str | None = None
    clock: Callable[[], float] = time.monotonic
    state: State = "closed"
    _outcomes: deque[bool] = field(default_factory=deque)  # True: a failure
    _opened_at: float = 0.0
    _probes: int = 0  # half-open: probes let through
    _probed: int = 0  # half-open: probes that succeeded
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def before(self) -> None:
        """A request is about to be sent: let it through, or raise ``CircuitOpen``."""
        with self._lock:
            refusal = self._refusal()
            if refusal is not None:
                raise CircuitOpen(refusal)
            if self.state == "open":  # its reset timeout has passed
                self._move("half_open")
                self._probes = self._probed = 0
            if self.state == "half_open":
                self._probes += 1

    def refusing(self) -> bool:
        """Whether a request now would be refused: a retry is not worth waiting for."""
        with self._lock:
            return self._refusal() is not None

    def _refusal(self) -> str | None:
        """Why a request now would be refused (None: it would go), under the lock: open within
        its reset timeout, or half-open with every probe in flight."""
        s = self.settings
        if self.state == "open":
            remaining = s.reset_timeout_s - (self.clock() - self._opened_at)
            if remaining <= 0:
                return None
            return (
                f"circuit breaker of backend {self.backend!r} is open ({s.failure_threshold} or "
                f"more of the last {s.window} requests failed): not sent; a probe is let through "
                f"in {remaining:.1f} s (reliability.circuit_breaker.reset_timeout_s "
                f"{s.reset_timeout_s:g})"
            )
        if self.state == "half_open" and self._probes >= s.half_open_requests:
            return (
                f"circuit breaker of backend {self.backend!r} is half-open and its "
                f"{s.half_open_requests} probe request(s) are in flight"
            )
        return None

    def settle(self, failed: bool | None) -> None:
        """The request let through ended: failed, succeeded, or (None) was not sent after all
        (the budget refused it), which frees its probe without a verdict."""
        if failed is None:
            with self._lock:
                if self.state == "half_open" and self._probes > self._probed:
                    self._probes -= 1
        elif failed:
            self.failed()
        else:
            self.succeeded()

    def succeeded(self) -> None:
        with self._lock:
            if self.state == "half_open":
                self._probed += 1
                if self._probed >= self.settings.half_open_requests:
                    self._outcomes.clear()
                    self._move("closed")
                return
            self._note(False)

    def failed(self) -> None:
        with self._lock:
            if self.state == "half_open":
                self._open()
                return
            self._note(True)
            if self.state == "closed" and sum(self._outcomes) >= self.settings.failure_threshold:
                self._open()

    def _note(self, failure: bool) -> None:
        self._outcomes.append(failure)
        while len(self._outcomes) > self.settings.window:
            self._outcomes.popleft()

    def _open(self) -> None:
        failures = sum(self._outcomes)
        self._opened_at = self.clock()
        self._move(
            "open",
            count=failures,
            message=f"{failures} of the last {len(self._outcomes)} requests failed; no request "
            f"for {self.settings.reset_timeout_s:g} s",
        )

    def _move(self, state: State, **fields: int | str) -> None:
        """The new state, as a telemetry event (``count``: the failures that opened it)."""
        self.state = state
        event = f"circuit_{'opened' if state == 'open' else state}"
        model = self.model[:512] if self.model else None
        record(event, provider=self.backend[:512], model=model, **fields)
