"""The Dagster adapter: experiments become jobs, stages become ops. Depends on the core, never the reverse."""

from crucible_dagster.dagster_plugin.component import CrucibleExperimentsComponent
from crucible_dagster.dagster_plugin.definitions import (
    definitions_from_experiments,
    definitions_from_folder,
)
from crucible_dagster.dagster_plugin.factory import build_job, build_schedule, compile_experiment
from crucible_dagster.dagster_plugin.io_manager import CrucibleContextIOManager
from crucible_dagster.dagster_plugin.resource import CrucibleResource
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator

__all__ = [
    "CrucibleContextIOManager",
    "CrucibleExperimentsComponent",
    "CrucibleResource",
    "CrucibleTranslator",
    "build_job",
    "build_schedule",
    "compile_experiment",
    "definitions_from_experiments",
    "definitions_from_folder",
]
