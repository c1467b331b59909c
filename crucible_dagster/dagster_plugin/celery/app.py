"""The Celery app the project's workers run (``celery -A crucible_dagster.dagster_plugin.celery.app``),
and the executor runs submit to them with.

dagster_celery's own tasks, on an app configured from ``celery.settings``: the broker,
results backend and late acknowledgement the executor submits with. A worker reconstructs
each step's job from the run's code origin (``definitions.py``), so it imports the project's
experiments itself; ``include`` only preloads the adapter.

The executor is dagster_celery's, with one check first: before it submits a step, at least one
worker must consume each queue the run's steps go to. Without it, a run with no worker waits
on the broker forever; with it, the run fails after ``worker_wait_seconds`` saying what to start.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from typing import Any

import dagster as dg
from celery import Celery
from dagster_celery.executor import CELERY_CONFIG, CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG
from dagster_celery.tasks import create_task

from crucible_dagster.dagster_plugin.celery.settings import (
    DEFAULT_WORKER_WAIT,
    CelerySettings,
    worker_wait_problem,
)

settings = CelerySettings.from_env()
app = make_app(
    CeleryExecutor.for_cli(
        broker=settings.broker,
        backend=settings.backend,
        include=["crucible_dagster.dagster_plugin"],
        config_source=dict(settings.config_source),
    ).app_args()
)
execute_plan = create_task(app)


class NoCeleryWorker(Exception):
    """No worker consumes a queue the run needs: the run fails instead of waiting forever."""


def consumed_queues(celery: Celery, queues: set[str], timeout: float) -> set[str] | str:
    """The queues among ``queues`` that some worker consumes, or why the broker could not be
    asked. RabbitMQ answers at once (the queue's consumer count); other brokers through the
    workers' own replies, which take ``timeout``."""
    try:
        counts = _amqp_consumer_counts(celery, queues)
        if counts is not None:
            return {queue for queue, count in counts.items() if count > 0}
        replies = celery.control.inspect(timeout=timeout).active_queues() or {}
    except Exception as exc:  # any broker failure means "cannot tell yet"
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    return {q.get("name", "") for found in replies.values() for q in found or []} & queues


def _amqp_consumer_counts(celery: Celery, queues: set[str]) -> dict[str, int] | None:
    """Each queue's consumer count from a passive declare (AMQP only; None elsewhere): a queue
    that does not exist yet has no consumer."""
    with celery.connection_for_read() as connection:
        connection.ensure_connection(max_retries=1)
        if connection.transport.driver_type != "amqp":
            return None
        counts: dict[str, int] = {}
        for queue in sorted(queues):
            channel = connection.channel()
            try:
                counts[queue] = channel.queue_declare(queue=queue, passive=True).consumer_count
            except connection.channel_errors:
                counts[queue] = 0  # NOT_FOUND: no worker ever declared it
            finally:
                with contextlib.suppress(Exception):  # the broker closed it after NOT_FOUND
                    channel.close()
        return counts


def wait_for_consumers(celery: Celery, queues: Iterable[str], wait: float) -> None:
    """Return once every queue in ``queues`` has a worker; NoCeleryWorker after ``wait`` seconds."""
    needed = set(queues)
    deadline = time.monotonic() + wait
    while True:
        found = consumed_queues(celery, needed, timeout=min(1.0, wait))
        missing = sorted(needed - (found if isinstance(found, set) else set()))
        if not missing:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
    from kombu.utils.url import maybe_sanitize_url

    broker = maybe_sanitize_url(celery.conf.broker_url)
    reason = "no worker answered" if isinstance(found, set) else f"the broker failed: {found}"
    raise NoCeleryWorker(
        f"no Celery worker is consuming queue {', '.join(map(repr, missing))} on {broker} "
        f"({reason}; waited {wait:g} s): start workers with `make workers` "
        "(the same CRUCIBLE_CELERY_BROKER and CRUCIBLE_CELERY_QUEUE as the run)"
    )


class CheckedCeleryExecutor(CeleryExecutor):
    """dagster_celery's executor, refusing to submit steps that no worker would ever take."""

    def __init__(self, *args: Any, worker_wait: float = DEFAULT_WORKER_WAIT, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.worker_wait = worker_wait

    def execute(self, plan_context: Any, execution_plan: Any) -> Iterator[Any]:
        celery = make_app(self.app_args())
        default = celery.conf.task_default_queue
        queues = {
            execution_plan.get_step_by_key(key).tags.get(DAGSTER_CELERY_QUEUE_TAG, default)
            for key in execution_plan.step_keys_to_execute
        }
        if queues:
            wait_for_consumers(celery, queues, self.worker_wait)
        yield from super().execute(plan_context, execution_plan)


CHECKED_CELERY_CONFIG = {
    **CELERY_CONFIG,
    "worker_wait_seconds": dg.Field(
        float,
        is_required=False,
        default_value=DEFAULT_WORKER_WAIT,
        description="Seconds the run waits, before submitting steps, for a worker to consume "
        "each queue its steps go to; then it fails saying to start workers.",
    ),
}


@dg.executor(
    name="celery",
    config_schema=CHECKED_CELERY_CONFIG,
    requirements=dg.multiple_process_executor_requirements(),
)
def celery_executor(init_context: dg.InitExecutorContext) -> CheckedCeleryExecutor:
    """dagster_celery's ``celery`` executor with a check that some worker takes the steps."""
    from dagster._core.execution.retries import RetryMode

    config: dict[str, Any] = dict(init_context.executor_config)
    wait = config.get("worker_wait_seconds", DEFAULT_WORKER_WAIT)
    problem = worker_wait_problem(wait)
    if problem:
        raise dg.DagsterInvalidConfigError(f"worker_wait_seconds: {problem}", [], wait)
    return CheckedCeleryExecutor(
        broker=config.get("broker"),
        backend=config.get("backend"),
        config_source=config.get("config_source"),
        include=config.get("include"),
        retries=RetryMode.from_config(config["retries"]),
        worker_wait=float(wait),
    )
