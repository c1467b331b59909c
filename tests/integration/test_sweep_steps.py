"""A one-run sweep's fan-out (issue 26, item 5): how many trials a step takes when the file says
nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from crucible_dagster import Experiment
from crucible_dagster.dagster_plugin import build_job
from crucible_dagster.experiment.ir import SweepConfig, step_size
from tests.integration.events import step_keys
from tests.integration.jobs import sweep_experiment


def _light() -> Experiment:
    """3 levels x 4 seeds, 12 light trials, ``trials_per_step`` not set."""
    data = sweep_experiment().model_dump(mode="json", by_alias=True, exclude_defaults=True)
    data["sweep"] = {k: v for k, v in data["sweep"].items() if k != "trials_per_step"}
    return Experiment.model_validate(data)


def _trial_steps(result: Any) -> set[str]:
    started = step_keys(result, dg.DagsterEventType.STEP_START)
    return {s for s in started if s.startswith("run_trial[")}


@pytest.mark.parametrize(
    ("n_trials", "size"),
    [(1, 1), (3, 1), (4, 1), (5, 2), (12, 3), (20, 5), (80, 20), (81, 20), (1000, 20)],
)
def test_unset_a_quarter_of_the_trials_a_step_at_most_20(n_trials: int, size: int) -> None:
    assert step_size(None, n_trials) == size
    assert step_size(SweepConfig(metric="m"), n_trials) == size


def test_a_size_the_file_sets_wins_over_the_quarter() -> None:
    assert step_size(SweepConfig(metric="m", trials_per_step=7), 20) == 7
    assert step_size(SweepConfig(metric="m", trials_per_step=1), 1000) == 1


def test_a_sweep_that_says_nothing_fans_out_into_four_steps(artifacts_dir: Path) -> None:
    experiment = _light()
    assert experiment.sweep is not None and experiment.sweep.trials_per_step is None
    with dg.instance_for_test() as instance:
        result = build_job(experiment).execute_in_process(instance=instance)
    assert result.success
    assert _trial_steps(result) == {
        f"run_trial[trials_{a}_to_{a + 2}]" for a in (1, 4, 7, 10)
    }  # 12 trials, 3 a step
