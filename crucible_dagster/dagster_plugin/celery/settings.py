"""One place for the Celery settings that the executor (in the run) and the workers share.

A worker listens to the broker it was started with and the run submits to the broker its
executor was configured with: both read them here, from the environment, so they agree.
RabbitMQ is the default broker; Redis works for both broker and results
(``CRUCIBLE_CELERY_BROKER=redis://127.0.0.1:6379/0``, ``CRUCIBLE_CELERY_BACKEND=redis://127.0.0.1:6379/1``).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

BROKER_ENV = "CRUCIBLE_CELERY_BROKER"
BACKEND_ENV = "CRUCIBLE_CELERY_BACKEND"
QUEUE_ENV = "CRUCIBLE_CELERY_QUEUE"
DEFAULT_BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"
DEFAULT_BACKEND = "rpc://"
#: dagster_celery's queue. ``CRUCIBLE_CELERY_QUEUE`` names another for the runs and the workers
#: of one deployment (or test), so workers of another never take its steps
DEFAULT_QUEUE = "dagster"
#: a queue name is a plain token: it becomes part of worker names, routing keys and messages;
#: a worker may consume several, comma-separated as Celery's ``-Q`` takes them
QUEUE_NAME = r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}"
QUEUE_PATTERN = rf"^{QUEUE_NAME}(,{QUEUE_NAME}){{0,15}}$"
WORKER_WAIT_ENV = "CRUCIBLE_CELERY_WORKER_WAIT"
#: seconds a run waits, before submitting anything, for a worker to consume its queue
DEFAULT_WORKER_WAIT = 10.0
MAX_WORKER_WAIT = 3600.0

#: A step is acknowledged when it ends, not when a worker takes it: a worker killed mid-step
#: leaves its message unacknowledged, and the broker hands it to another worker. One message
#: at a time per worker, so a dying worker holds (and gives back) only the step it was running.
RELIABILITY_SETTINGS: dict[str, Any] = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry_on_startup": True,
    # a worker that loses the broker stops its step: the broker hands that step on, and two
    # workers never run it at once
    "worker_cancel_long_running_tasks_on_connection_loss": True,
}


@dataclass(frozen=True)
class CelerySettings:
    broker: str = DEFAULT_BROKER
    backend: str = DEFAULT_BACKEND
    queue: str = DEFAULT_QUEUE
    config_source: dict[str, Any] = field(default_factory=lambda: dict(RELIABILITY_SETTINGS))
    worker_wait: float = DEFAULT_WORKER_WAIT

    @classmethod
    def from_env(cls) -> CelerySettings:
        return cls(
            broker=os.environ.get(BROKER_ENV) or DEFAULT_BROKER,
            backend=os.environ.get(BACKEND_ENV) or DEFAULT_BACKEND,
            queue=os.environ.get(QUEUE_ENV) or DEFAULT_QUEUE,
            worker_wait=worker_wait_from_env(),
        )

    def executor_config(self) -> dict[str, Any]:
        """The executor's config: dagster_celery's (``broker``, ``backend``, ``config_source``)
        and how long a run waits for a worker on its queue (``worker_wait_seconds``)."""
        return {
            "broker": self.broker,
            "backend": self.backend,
            "config_source": {**self.config_source, "task_default_queue": self.queue},
            "worker_wait_seconds": self.worker_wait,
        }


def worker_wait_problem(value: object) -> str | None:
    """Why ``value`` is no number of seconds to wait for a worker (None when it is one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"expected a number of seconds, found {value!r}"
    if not (math.isfinite(value) and 0 < value <= MAX_WORKER_WAIT):
        return f"expected seconds above 0 and up to {MAX_WORKER_WAIT:g}, found {value!r}"
    return None


def worker_wait_from_env() -> float:
    """``CRUCIBLE_CELERY_WORKER_WAIT``, checked like the executor's ``worker_wait_seconds``."""
    text = os.environ.get(WORKER_WAIT_ENV, "").strip()
    if not text:
        return DEFAULT_WORKER_WAIT
    try:
        value = float(text)
    except ValueError:
        raise ValueError(
            f"{WORKER_WAIT_ENV}: expected a number of seconds, found {text!r}"
        ) from None
    problem = worker_wait_problem(value)
    if problem:
        raise ValueError(f"{WORKER_WAIT_ENV}: {problem}")
    return value


def queue_problem(queue: str) -> str | None:
    """Why ``queue`` is no queue name (or comma-separated list of up to 16) we use, or None."""
    if re.fullmatch(QUEUE_PATTERN, queue):
        return None
    return (
        "expected a queue name of letters, digits and '_.:-' (at most 200, starting with a letter "
        f"or digit; several separated by commas), found {queue[:60]!r}"
    )


def missing_extra() -> ImportError:
    return ImportError(
        "executor: celery needs the celery extra: pip install 'crucible_dagster[celery]' "
        "(dagster-celery and its broker client)"
    )
