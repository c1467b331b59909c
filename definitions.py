"""Dagster entry point: every experiment under ./experiments (or $CRUCIBLE_EXPERIMENTS_DIR) becomes a job.

dagster job execute -f definitions.py -j core_pipeline_demo
dagster dev -w workspace.yaml

CRUCIBLE_EXECUTOR=celery puts every experiment that names no executor on Celery workers.
"""

import os
from pathlib import Path

from crucible_dagster.dagster_plugin import definitions_from_folder
from crucible_dagster.dagster_plugin.definitions import default_executor_from_env

defs = definitions_from_folder(
    os.environ.get("CRUCIBLE_EXPERIMENTS_DIR") or Path(__file__).parent / "experiments",
    default_executor=default_executor_from_env(),
)
