"""A one-run sweep's fan-out (issue 26, item 5): how many trials a step takes when the file says
nothing, ``trials_per_step`` set from the Launchpad (checked before any trial runs), and the
sweep asset's per-configuration table."""

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
from crucible_dagster.reports.precision import round_by_interval
from tests.dagster_helpers import ephemeral_instance
from tests.integration.events import step_keys, sweep_comparison, sweep_steps
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
    started = sweep_steps(step_keys(result, dg.DagsterEventType.STEP_START), "light_sweep")
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
    with ephemeral_instance() as instance:
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
    with ephemeral_instance() as instance:
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
    with ephemeral_instance() as instance:
        result = build_job(sweep_experiment()).execute_in_process(
            instance=instance, run_config=_config(trials_per_step=value), raise_on_error=False
        )
    assert not result.success
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert [e.step_key for e in failures] == ["light_sweep__sweep.plan_trials"]
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


@pytest.mark.parametrize(
    ("value", "low", "high", "expected"),
    [
        (0.988431, 0.98371, 0.99302, (0.9884, 0.9837, 0.993)),  # half-width 0.0047
        (1234.56, 1100.2, 1350.9, (1230.0, 1100.0, 1350.0)),  # half-width 125: tens
        (0.5, None, None, (0.5, None, None)),  # no interval: four significant digits
        (0.123456789, None, None, (0.1235, None, None)),
        (0.7, 0.7, 0.7, (0.7, 0.7, 0.7)),  # zero width: four significant digits
        (float("nan"), 0.1, 0.2, (None, 0.1, 0.2)),  # NaN is no number to show
        (0.3, float("-inf"), 0.4, (0.3, None, 0.4)),
    ],
)
def test_numbers_are_rounded_to_what_their_interval_resolves(
    value: float, low: Any, high: Any, expected: tuple[Any, ...]
) -> None:
    assert round_by_interval(value, low, high) == expected


def test_the_sweep_asset_has_a_table_of_configurations(artifacts_dir: Path) -> None:
    with ephemeral_instance() as instance:
        result = build_job(sweep_experiment()).execute_in_process(instance=instance)
    (materialization,) = result.asset_materializations_for_node("light_sweep__sweep.compare_trials")
    table = materialization.metadata["configurations"]
    assert isinstance(table, dg.TableMetadataValue)
    assert [c.name for c in table.schema.columns] == [
        "configuration",
        "parameters",
        "n",
        "mean",
        "ci_low",
        "ci_high",
    ]
    comparison = sweep_comparison(artifacts_dir, "light_sweep", result.run_id)
    rows = {r.data["configuration"]: r.data for r in table.records}
    assert list(rows) == list(comparison["configurations"])
    for name, summary in comparison["configurations"].items():
        row = rows[name]
        assert row["n"] == summary["n"] == 20  # 4 seeds x 5 folds
        assert json.loads(str(row["parameters"])) == summary["params"]
        low, high = summary["ci_low"], summary["ci_high"]
        # rounded, and by no more than the interval's resolution
        half = (high - low) / 2
        assert abs(row["mean"] - summary["mean"]) <= half / 10
        assert len(repr(row["mean"]).split(".")[1]) <= 4
        assert row["ci_low"] <= row["mean"] <= row["ci_high"]
    # the scalar means stay beside it, for the UI's plots across runs
    assert {k for k in materialization.metadata if k.startswith("mean/")} == {
        f"mean/{name}" for name in rows
    }


def test_materialize_on_the_sweeps_report_runs_its_steps_with_the_jobs_tags(
    artifacts_dir: Path,
) -> None:
    """The catalog's Materialize (Dagster's implicit asset job, the sweep's report selected) runs
    the job's steps (plan, a step per group of trials, compare), not one opaque step, and the
    run carries the job's tags, so filtering runs by experiment finds it."""
    from crucible_dagster.dagster_plugin import definitions_from_experiments

    defs = definitions_from_experiments([_light()])
    key = dg.AssetKey(["crucible", "light_sweep", "sweep"])
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={key})
    with ephemeral_instance() as instance:
        result = job.execute_in_process(instance=instance)
        assert result.success
        assert sweep_steps(step_keys(result, dg.DagsterEventType.STEP_SUCCESS), "light_sweep") == {
            "plan_trials",
            *(f"run_trial[trials_{a}_to_{a + 2}]" for a in (1, 4, 7, 10)),
            "compare_trials",
        }
        run = instance.get_run_by_id(result.run_id)
        assert run is not None and run.tags["crucible/experiment"] == "light_sweep"
        event = instance.get_latest_materialization_event(key)
        assert event is not None and event.run_id == result.run_id
    manifest = json.loads(
        (artifacts_dir / "light_sweep" / result.run_id / "manifest.json").read_text()
    )
    assert manifest["status"] == "completed"
