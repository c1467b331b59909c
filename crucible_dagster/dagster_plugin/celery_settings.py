"""One place for the Celery settings that the executor (in the run) and the workers share.

A worker listens to the broker it was started with and the run submits to the broker its
executor was configured with: both read them here, from the environment, so they agree.
RabbitMQ is the default broker; Redis works for both broker and results
(``CRUCIBLE_CELERY_BROKER=redis://127.0.0.1:6379/0``, ``CRUCIBLE_CELERY_BACKEND=redis://127.0.0.1:6379/1``).
"""

from __future__ import annotations

import os
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

    @classmethod
    def from_env(cls) -> CelerySettings:
        return cls(
            broker=os.environ.get(BROKER_ENV) or DEFAULT_BROKER,
            backend=os.environ.get(BACKEND_ENV) or DEFAULT_BACKEND,
            queue=os.environ.get(QUEUE_ENV) or DEFAULT_QUEUE,
        )

    def executor_config(self) -> dict[str, Any]:
        """The ``dagster_celery`` executor's config (``broker``, ``backend``, ``config_source``)."""
        return {
            "broker": self.broker,
            "backend": self.backend,
            "config_source": {**self.config_source, "task_default_queue": self.queue},
        }


def missing_extra() -> ImportError:
    return ImportError(
        "executor: celery needs the celery extra: pip install 'crucible_dagster[celery]' "
        "(dagster-celery and its broker client)"
    )
