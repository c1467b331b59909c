"""The Celery app the project's workers run (``celery -A crucible_dagster.dagster_plugin.celery_app``).

dagster_celery's own tasks, on an app configured from ``celery_settings``: the broker,
results backend and late acknowledgement the executor submits with. A worker reconstructs
each step's job from the run's code origin (``definitions.py``), so it imports the project's
experiments itself; ``include`` only preloads the adapter.
"""

from __future__ import annotations

from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from crucible_dagster.dagster_plugin.celery_settings import CelerySettings

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
