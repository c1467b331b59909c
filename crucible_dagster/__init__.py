"""crucible_dagster: the Crucible experiment framework as a Dagster plugin.

``import crucible_dagster`` is light and never imports dagster; the Dagster adapter
is ``crucible_dagster.dagster_plugin``.
"""

from crucible_dagster.experiment.ir import Experiment, OutputSpec, StageDef
from crucible_dagster.experiment.loading import dump_experiment, load_experiment, loads_experiment
from crucible_dagster.experiment.problems import ExperimentError, Problem
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.registry import Registry
from crucible_dagster.runtime.runner import PipelineFailed, RunResult, StageFailure, run
from crucible_dagster.runtime.stage import Stage, StageError, StageOptions

__all__ = [
    "Context",
    "Experiment",
    "ExperimentError",
    "OutputSpec",
    "PipelineFailed",
    "Problem",
    "Registry",
    "RunResult",
    "Stage",
    "StageDef",
    "StageError",
    "StageFailure",
    "StageOptions",
    "dump_experiment",
    "load_experiment",
    "loads_experiment",
    "run",
]
