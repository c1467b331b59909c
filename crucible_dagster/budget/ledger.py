"""The run's budget ledger: what its backends spent, shared by threads, stages and processes.

One ledger per run (a sweep run's trials share the sweep's): ``budget.json`` in the run
directory, read and rewritten under an exclusive lock (``flock`` on ``budget.json.lock``) for
each request, so the threads of a backend, the stages of a Dagster run (each op may be its own
process) and the trials of a sweep (on Celery workers too, over a shared folder) count against
one total. A run without a directory keeps its ledger in memory.

Before a request is sent, ``reserve`` takes one request and the request's estimated tokens and
cost; it refuses (``BudgetExhausted``) when what was spent, plus what is in flight, plus this
estimate would pass a limit, and from then on refuses every request: the run stops calling.
The answer's own ``usage`` then ``settle``s the reservation. ``max_requests`` is therefore
exact; ``max_tokens`` and ``max_cost`` hold as long as answers stay within their estimate
(``max_tokens`` of the backend bounds them; without it an answer may pass its estimate).
A process that dies with requests in flight leaves their reservation counted: the ledger errs
on the side of spending less.

The ledger is a record read back: a file that is not a regular file, too large, not JSON, of
another experiment, or with a field of the wrong type is a ``LedgerError`` naming the file and
the field, and every request is refused (the run never spends past a budget it cannot read).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crucible_dagster.common.files import atomic_write_text
from crucible_dagster.experiment.ir import Budget

LEDGER_FILE = "budget.json"
#: how every request the budget refused begins its error: the score stage leaves those
#: samples out (never asked is not wrong)
NOT_SENT = "budget exhausted"
MAX_LEDGER_BYTES = 64 * 1024
#: a float's rounding is not a reason to refuse the last request of an exactly sized budget
TOLERANCE = 1e-9
_COUNTS = ("requests", "tokens", "reserved_tokens", "in_flight", "refused")
_AMOUNTS = ("cost", "reserved_cost")


class BudgetExhausted(RuntimeError):
    """A request the budget has no room for: it is not sent."""


class LedgerError(BudgetExhausted):
    """The ledger cannot be read: every request is refused, the message names file and field."""


@dataclass(frozen=True)
class Reservation:
    tokens: int
    cost: float


def fresh_state(experiment_id: str) -> dict[str, Any]:
    return {
        "experiment_id": experiment_id,
        **dict.fromkeys(_COUNTS, 0),
        **dict.fromkeys(_AMOUNTS, 0.0),
        "exhausted": False,
        "reason": None,
    }


def _checked(data: Any, where: str, experiment_id: str) -> dict[str, Any]:
    """The ledger's state, each field checked: a LedgerError naming the first bad one."""
    if not isinstance(data, dict):
        raise LedgerError(f"{where}: expected a JSON object, found {type(data).__name__}")
    if data.get("experiment_id") != experiment_id:
        found = repr(data.get("experiment_id"))[:80]
        raise LedgerError(
            f"{where}: experiment_id: expected {experiment_id!r} (this run's), found {found}"
        )
    for name in (*_COUNTS, *_AMOUNTS, "exhausted", "reason"):
        value: Any = data.get(name)
        if name in _COUNTS:
            ok = type(value) is int and 0 <= value <= 10**15
            what = "a whole number >= 0"
        elif name in _AMOUNTS:
            ok = type(value) in (int, float) and math.isfinite(value) and 0 <= value <= 1e15
            what = "a finite number >= 0"
        elif name == "exhausted":
            ok, what = type(value) is bool, "true or false"
        else:
            ok = value is None or (isinstance(value, str) and len(value) <= 500)
            what = "null or a short text"
        if not ok:
            raise LedgerError(f"{where}: {name}: expected {what}, found {repr(value)[:60]}")
    return {k: data[k] for k in fresh_state(experiment_id)}


def _read(path: Path, experiment_id: str) -> dict[str, Any]:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return fresh_state(experiment_id)
    if not stat.S_ISREG(info.st_mode):
        raise LedgerError(f"{path}: expected a regular file (not a link, folder or device)")
    if info.st_size > MAX_LEDGER_BYTES:
        raise LedgerError(f"{path}: {info.st_size} bytes, over the {MAX_LEDGER_BYTES} a ledger has")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise LedgerError(f"{path}: not a JSON ledger ({type(exc).__name__})") from None
    return _checked(data, str(path), experiment_id)


def recorded_cost(path: Path, experiment_id: str) -> float:
    """What the ledger at ``path`` records as spent, read without its lock and never written:
    an earlier run's ledger, read back (checked as any ledger is; LedgerError when it is bad)."""
    return float(_read(path, experiment_id)["cost"])


_THREAD_LOCKS: dict[str, threading.Lock] = {}
_MEMORY: dict[str, dict[str, Any]] = {}
_GUARD = threading.Lock()


def _thread_lock(key: str) -> threading.Lock:
    with _GUARD:
        return _THREAD_LOCKS.setdefault(key, threading.Lock())


class Ledger:
    """The budget of one run, at ``path`` (or in memory under ``key`` when None)."""

    def __init__(self, limits: Budget, path: Path | None, *, key: str, experiment_id: str):
        self.limits = limits
        self.path = path
        self.key = str(path) if path is not None else f"memory:{key}"
        self.experiment_id = experiment_id

    @contextmanager
    def _state(self) -> Iterator[dict[str, Any]]:
        """The state, locked against every thread and process, written back afterwards."""
        with _thread_lock(self.key):
            if self.path is None:
                state = _MEMORY.setdefault(self.key, fresh_state(self.experiment_id))
                yield state
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = self.path.with_name(self.path.name + ".lock")
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                state = _read(self.path, self.experiment_id)
                yield state
                atomic_write_text(self.path, json.dumps(state, sort_keys=True))
            finally:
                os.close(fd)  # closing drops the lock

    def _update(self, change: Callable[[dict[str, Any]], Any]) -> Any:
        try:
            with self._state() as state:
                return change(state)
        except OSError as exc:
            raise LedgerError(f"{self.path}: cannot be read or written ({exc.strerror})") from None

    def reserve(self, tokens: int, cost: float) -> Reservation:
        """Room for one request of ``tokens`` and ``cost`` (estimates); BudgetExhausted when
        the budget has none, and every later request is refused too."""

        def take(state: dict[str, Any]) -> Reservation | str:
            reason = state["reason"] if state["exhausted"] else self._no_room(state, tokens, cost)
            if reason is not None:  # recorded (the state is written back), then refused
                state.update(exhausted=True, reason=reason, refused=state["refused"] + 1)
                return str(reason)
            state["requests"] += 1
            state["in_flight"] += 1
            state["reserved_tokens"] += tokens
            state["reserved_cost"] += cost
            return Reservation(tokens, cost)

        try:
            taken: Reservation | str = self._update(take)
        except LedgerError as exc:
            raise LedgerError(f"{NOT_SENT} (the ledger cannot be read: {exc}): not sent") from None
        if isinstance(taken, str):
            raise BudgetExhausted(f"{NOT_SENT} ({taken}): not sent")
        return taken

    def _no_room(self, state: dict[str, Any], tokens: int, cost: float) -> str | None:
        limits = self.limits
        if limits.max_requests is not None and state["requests"] + 1 > limits.max_requests:
            return f"max_requests {limits.max_requests} reached"
        if limits.max_tokens is not None:
            total = state["tokens"] + state["reserved_tokens"] + tokens
            if total > limits.max_tokens:
                return (
                    f"max_tokens {limits.max_tokens}: {state['tokens']} used, this needs {tokens}"
                )
        if limits.max_cost is not None:
            total = state["cost"] + state["reserved_cost"] + cost
            if total > limits.max_cost * (1 + TOLERANCE) + TOLERANCE:
                return f"max_cost {limits.max_cost:g}: {state['cost']:.6g} spent"
        return None

    def settle(self, reservation: Reservation, tokens: int, cost: float) -> None:
        """The request's answer (or failure: 0 and 0) replaces its reservation."""

        def done(state: dict[str, Any]) -> None:
            state["in_flight"] = max(0, state["in_flight"] - 1)
            state["reserved_tokens"] = max(0, state["reserved_tokens"] - reservation.tokens)
            state["reserved_cost"] = max(0.0, state["reserved_cost"] - reservation.cost)
            state["tokens"] += tokens
            state["cost"] += cost

        self._update(done)

    def snapshot(self) -> dict[str, Any]:
        """What was spent and against which limits: the run's ``budget`` metric."""
        try:
            state = dict(self._update(dict))
        except LedgerError as exc:
            state = {"exhausted": True, "reason": str(exc)}
        limits = self.limits.model_dump(exclude_none=True)
        spent = {k: state.get(k) for k in ("requests", "tokens", "cost", "refused")}
        return {
            "limits": limits,
            "spent": spent,
            "exhausted": state["exhausted"],
            "reason": state["reason"],
        }
