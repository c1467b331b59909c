"""The Launchpad's run config (issue 12, in part): the experiment seed and a sweep's grid and
seeds are run config, pre-filled from the file; changing them changes the run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from crucible_dagster.dagster_plugin import build_job
from tests.dagster_helpers import ephemeral_instance
from tests.integration.events import sweep_comparison
from tests.integration.jobs import sweep_experiment
from tests.test_history import gated


def _prefilled(job: dg.JobDefinition) -> dict[str, Any]:
    """What the Launchpad shows under resources.crucible.config before anyone types."""
    field = job.resource_defs["crucible"].config_schema.as_field()
    assert field.default_provided
    return dict(field.default_value)


def test_the_seed_is_run_config_prefilled_from_the_file(artifacts_dir: Path) -> None:
    experiment = gated()
    job = build_job(experiment)
    assert _prefilled(job)["seed"] == 5  # the file's seed
    with ephemeral_instance() as instance:
        result = job.execute_in_process(
            instance=instance, run_config={"resources": {"crucible": {"config": {"seed": 6}}}}
        )
    manifest = json.loads((artifacts_dir / "gated" / result.run_id / "manifest.json").read_text())
    assert manifest["seed"] == 6 and manifest["experiment"]["seed"] == 6
    # the report asset's graph hands the run's experiment from stage to stage
    bench = result.output_for_node("gated__stages.bench")
    assert bench.experiment.seed == 6


def test_a_bad_seed_fails_the_run_with_the_irs_message() -> None:
    job = build_job(gated())
    with ephemeral_instance() as instance:
        result = job.execute_in_process(
            instance=instance,
            run_config={"resources": {"crucible": {"config": {"seed": -1}}}},
            raise_on_error=False,
        )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    message = failure.step_failure_data.error.message
    assert "resources.crucible.config.seed: expected an integer between 0 and" in message


def test_the_resource_fields_say_their_rules_and_offer_choices() -> None:
    """Issue 26 item 4: the Launchpad shows what each field means and where its range is
    checked; the option-checking mode is a choice, not a Python type name."""
    fields = build_job(gated()).resource_defs["crucible"].config_schema.as_field()
    config = fields.config_type.fields  # type: ignore[attr-defined]
    checks = config["validate_options"].config_type.inner_type
    assert checks.kind.name == "ENUM" and checks.given_name == "OptionChecks"
    assert sorted(v.config_value for v in checks.enum_values) == ["error", "off", "warn"]
    for name in ("seed", "seeds"):
        description = config[name].description
        assert "0 to 4294967295" in description, description
        assert "checked when the run starts, before any stage runs" in description
    assert all(field.description for field in config.values())


def test_a_sweeps_grid_and_seeds_are_run_config(artifacts_dir: Path) -> None:
    experiment = sweep_experiment()  # 3 levels x 4 seeds in the file
    job = build_job(experiment)
    prefilled = _prefilled(job)
    assert prefilled["parameters"] == {"level": [0.80, 0.82, 0.90]}
    assert prefilled["seeds"] == [1, 2, 3, 4]
    override = {"parameters": {"level": [0.80, 0.90]}, "seeds": [1, 2, 3]}
    with ephemeral_instance() as instance:
        result = job.execute_in_process(
            instance=instance, run_config={"resources": {"crucible": {"config": override}}}
        )
    manifest = json.loads(
        (artifacts_dir / "light_sweep" / result.run_id / "manifest.json").read_text()
    )
    assert len(manifest["trials"]) == 6 and manifest["seeds"] == [1, 2, 3]
    assert sorted(manifest["metrics"]["sweep"]["configurations"]) == ["level_0_8", "level_0_9"]


def test_the_artifacts_root_can_come_from_an_env_var_resolved_at_run_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crucible_dagster.dagster_plugin.resource import CrucibleResource

    root = tmp_path / "team_share"
    monkeypatch.setenv("TEAM_ARTIFACTS", str(root))
    resource = CrucibleResource(artifacts_dir=dg.EnvVar("TEAM_ARTIFACTS"))
    job = build_job(gated(), resource=resource)
    with ephemeral_instance() as instance:
        result = job.execute_in_process(instance=instance)
    assert (root / "gated" / result.run_id / "manifest.json").is_file()


def test_a_raced_sweeps_racing_settings_are_run_config(artifacts_dir: Path) -> None:
    """sweep.racing is pre-filled from the file; a run that changes alpha races with it (and
    keeps the settings it did not give), a bad alpha fails with the IR's message."""
    from crucible_dagster import Experiment
    from tests.test_racing_sweep import RACED

    job = build_job(Experiment.model_validate(RACED))
    prefilled = _prefilled(job)["racing"]
    assert prefilled["alpha"] == 0.05 and prefilled["first_look"] == 3
    with ephemeral_instance() as instance:
        result = job.execute_in_process(
            instance=instance,
            run_config={"resources": {"crucible": {"config": {"racing": {"alpha": 0.2}}}}},
        )
        assert result.success
        bad = job.execute_in_process(
            instance=instance,
            run_config={"resources": {"crucible": {"config": {"racing": {"alpha": 1.5}}}}},
            raise_on_error=False,
        )
    record = json.loads((artifacts_dir / "raced" / result.run_id / "race.json").read_text())
    assert record["settings"]["alpha"] == 0.2 and record["settings"]["first_look"] == 3
    assert sweep_comparison(artifacts_dir, "raced", result.run_id)["race"]["alpha"] == 0.2
    assert not bad.success
    (failure, *_) = [e for e in bad.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    message = failure.step_failure_data.error.message
    assert "resources.crucible.config.racing.alpha: expected a number in (0, 1), got 1.5" in message
    for racing, said in (
        ({"early_stopping": True}, "resources.crucible.config.racing.early_stopping"),
        ({"budget": 0}, "resources.crucible.config.racing.budget.evaluations"),
        ({"block": "samples"}, "resources.crucible.config.racing.block: block 'samples' needs"),
    ):
        with ephemeral_instance() as instance:
            refused = job.execute_in_process(
                instance=instance,
                run_config={"resources": {"crucible": {"config": {"racing": racing}}}},
                raise_on_error=False,
            )
        assert not refused.success
        (failure, *_) = [
            e for e in refused.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE
        ]
        assert said in failure.step_failure_data.error.message, failure.step_failure_data.error
