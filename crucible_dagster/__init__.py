"""crucible_dagster: the Crucible experiment framework as a Dagster plugin.

``import crucible_dagster`` is light and never imports dagster; the Dagster adapter
is ``crucible_dagster.dagster_plugin``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crucible_dagster.experiment.ir import Experiment, OutputSpec, StageDef
from crucible_dagster.experiment.loading import dump_experiment, load_experiment, loads_experiment
from crucible_dagster.experiment.problems import ExperimentError, Problem
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.registry import Registry
from crucible_dagster.runtime.runner import PipelineFailed, RunResult, StageFailure, run
from crucible_dagster.runtime.stage import Stage, StageError, StageOptions

if TYPE_CHECKING:
    import pandas as pd


def history(experiment_id: str, root: str | None = None) -> pd.DataFrame:
    """One row per run of the experiment: its run directories and, where ``DAGSTER_HOME`` is
    set, Dagster's instance (``recorded_in`` says which), with headline metrics and the
    accepted baseline marked. Loads pandas on first use, not with ``import crucible_dagster``."""
    from crucible_dagster.run_history.runs import history as read_history

    return read_history(experiment_id, root)


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
    "history",
    "load_experiment",
    "loads_experiment",
    "run",
]
