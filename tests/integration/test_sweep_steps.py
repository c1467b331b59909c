"""A one-run sweep's fan-out (issue 26, item 5): how many trials a step takes when the file says
nothing, and ``trials_per_step`` set from the Launchpad (checked before any trial runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from crucible_dagster import Experiment
from crucible_dagster.dagster_plugin import build_job
from crucible_dagster.dagster_plugin.resource import CrucibleResource
from crucible_dagster.experiment.ir import SweepConfig, step_size
from tests.integration.events import step_keys
from tests.integration.jobs import sweep_experiment
from tests.test_history import gated


def _light() -> Experiment:
    """3 levels x 4 seeds, 12 light trials, ``trials_per_step`` not set."""
    data = sweep_experiment().model_dump(mode="json", by_alias=True, exclude_defaults=True)
    data["sweep"] = {k: v for k, v in data["sweep"].items() if k != "trials_per_step"}
    return Experiment.model_validate(data)


def _config(**values: Any) -> dict[str, Any]:
    return {"resources": {"crucible": {"config": values}}}


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


def test_trials_per_step_is_run_config_prefilled_from_the_file(artifacts_dir: Path) -> None:
    job = build_job(sweep_experiment())  # trials_per_step: 10 in the file
    field = job.resource_defs["crucible"].config_schema.as_field()
    assert dict(field.default_value)["trials_per_step"] == 10
    unset = build_job(_light()).resource_defs["crucible"].config_schema.as_field()
    assert dict(unset.default_value)["trials_per_step"] is None  # empty: the quarter rule
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, run_config=_config(trials_per_step=4))
    assert result.success
    assert _trial_steps(result) == {
        "run_trial[trials_1_to_4]",
        "run_trial[trials_5_to_8]",
        "run_trial[trials_9_to_12]",
    }
    run_dir = artifacts_dir / "light_sweep" / result.run_id
    assert (
        json.loads((run_dir / "manifest.json").read_text())["experiment"]["sweep"][
            "trials_per_step"
        ]
        == 4
    )
    assert len(list(run_dir.glob("trials/*/manifest.json"))) == 12


@pytest.mark.parametrize(("value", "said"), [(0, "got 0"), (1001, "got 1001")])
def test_an_out_of_range_size_fails_before_any_trial_with_the_field_named(
    value: int, said: str, artifacts_dir: Path
) -> None:
    with dg.instance_for_test() as instance:
        result = build_job(sweep_experiment()).execute_in_process(
            instance=instance, run_config=_config(trials_per_step=value), raise_on_error=False
        )
    assert not result.success
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert [e.step_key for e in failures] == ["plan_trials"]
    message = failures[0].step_failure_data.error.message
    assert (
        "resources.crucible.config.trials_per_step: expected an integer between 1 and 1000, " + said
    ) in message
    assert "Traceback" not in message
    assert _trial_steps(result) == set()  # no trial step started
    assert not list((artifacts_dir / "light_sweep").glob("*/trials/*"))  # no trial directory


def test_a_bool_for_the_size_is_refused_at_submission() -> None:
    with pytest.raises(dg.DagsterInvalidConfigError, match="trials_per_step"):
        build_job(sweep_experiment()).execute_in_process(run_config=_config(trials_per_step=True))


def test_a_size_where_no_step_groups_trials_is_refused_with_the_reason() -> None:
    base = sweep_experiment()
    assert base.sweep is not None
    partitioned = base.model_copy(
        update={"sweep": base.sweep.model_copy(update={"mode": "partitions"})}
    )
    assert partitioned.dagster.sweep.mode == "partitions"
    for experiment, why in (
        (gated(), "experiment gated is not a sweep"),
        (partitioned, "one trial per partition"),
    ):
        with pytest.raises(dg.Failure) as raised:
            CrucibleResource(trials_per_step=2).applied_to(experiment)
        assert raised.value.description is not None
        assert raised.value.description.startswith("resources.crucible.config.trials_per_step: ")
        assert why in raised.value.description
    # the file's own value, or none given, changes nothing
    assert CrucibleResource(trials_per_step=None).applied_to(gated()) == gated()
