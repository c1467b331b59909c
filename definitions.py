"""Dagster entry point: every experiment under ./experiments (or $CRUCIBLE_EXPERIMENTS_DIR) becomes a job.

dagster job execute -f definitions.py -j core_pipeline_demo
dagster dev -w workspace.yaml
"""

import os
from pathlib import Path

from crucible_dagster.dagster_plugin import definitions_from_folder

defs = definitions_from_folder(
    os.environ.get("CRUCIBLE_EXPERIMENTS_DIR") or Path(__file__).parent / "experiments"
)
