"""The retraining trigger (issue 29): a sensor that launches the job once for a run that shows
drift, never twice for one run, and not again within its cooldown, in process and under a live
dagster-daemon on SQLite."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from crucible_dagster import Experiment
from crucible_dagster.dagster_plugin import definitions_from_experiments
from crucible_dagster.dagster_plugin.resource import CrucibleResource
from crucible_dagster.experiment.ir import RetrainingTrigger
from crucible_dagster.monitoring.retraining import State, decide, reasons
from crucible_dagster.runtime.runner import run
from tests.conftest import ROOT, subprocess_env
from tests.dagster_helpers import ephemeral_instance, instance_at, migrate_instance
from tests.test_drift import _experiment, _samples

pytestmark = pytest.mark.integration

TRIGGER = {"when": ["drift"], "cooldown_hours": 24, "interval_s": 1}


def _triggered(reference: Path, current: Path, **trigger: Any) -> Experiment:
    data = _experiment(reference, current).model_dump(
        mode="json", by_alias=True, exclude_defaults=True
    )
    data["reliability"]["retraining_trigger"] = {**TRIGGER, **trigger}
    return Experiment.model_validate(data)


def _tick(
    defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None, root: Path
) -> Any:
    sensor = defs.get_sensor_def("drifted_retraining")
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"crucible": CrucibleResource(artifacts_dir=str(root))},
        definitions=defs,
    )  # fmt: skip
    return sensor.evaluate_tick(context)


def test_one_launch_for_a_drifted_run_then_none_within_the_cooldown(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    reference, current = _samples(tmp_path, shift=5.0)
    experiment = _triggered(reference, current)
    defs = definitions_from_experiments([experiment])
    with ephemeral_instance() as instance:
        nothing = _tick(defs, instance, None, artifacts_dir)
        assert nothing.skip_message.startswith("no ended run under")
        assert run(experiment, run_id="r1").status == "completed"
        first = _tick(defs, instance, None, artifacts_dir)
        (request,) = first.run_requests
        assert defs.get_sensor_def("drifted_retraining").job_name == "drifted"
        assert request.run_key == "retrain-after-r1"
        assert request.tags["crucible/retrain_reason"] == "drift in age"
        assert request.tags["crucible/retrain_after_run"] == "r1"
        again = _tick(defs, instance, first.cursor, artifacts_dir)
        assert again.run_requests == [] and again.skip_message == "run r1 already led to a launch"
        assert run(experiment, run_id="r2").status == "completed"
        cooling = _tick(defs, instance, first.cursor, artifacts_dir)
        assert cooling.run_requests == []
        assert cooling.skip_message.startswith("cooling down until ")
        assert cooling.skip_message.endswith("(run r2: drift in age)")


def test_after_the_cooldown_a_later_drifted_run_launches_again(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    reference, current = _samples(tmp_path, shift=5.0)
    experiment = _triggered(reference, current, cooldown_hours=2)
    assert run(experiment, run_id="r1").status == "completed"
    trigger = RetrainingTrigger.model_validate({**TRIGGER, "cooldown_hours": 2})
    launched = datetime.now(timezone.utc) - timedelta(hours=1)
    folder = artifacts_dir / "drifted"
    assert decide(folder, trigger, State(launched, "r0")).launch is False
    later = datetime.now(timezone.utc) + timedelta(hours=1, minutes=1)
    assert decide(folder, trigger, State(launched, "r0"), now=later).launch is True
    # a torn or foreign cursor is a fresh state, never an error
    assert State.from_json("{not json") == State() == State.from_json('{"launched_at": 3}')


def test_a_calm_run_launches_nothing_and_reasons_read_every_signal(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    reference, current = _samples(tmp_path, shift=0.0)
    experiment = _triggered(reference, current)
    assert run(experiment, run_id="calm").status == "completed"
    decision = decide(artifacts_dir / "drifted", experiment.reliability.retraining_trigger, State())  # type: ignore[arg-type]
    assert decision.launch is False and decision.message == "run calm shows none of: drift"
    trigger = RetrainingTrigger(when=["drift", "quality_drop", "monitoring"])
    metrics = {
        "drift": {"drifted": []},
        "quality_targets": [{"name": "monitoring_error_rate", "passed": False, "estimate": 0.4},
                            # no data: the check fails, but it is no evidence to retrain on
                            {"name": "monitoring_cost_per_1k", "passed": False},
                            {"name": "accuracy", "passed": False, "estimate": 0.1}],
        "feedback_quality": [{"model_version": "v2", "day": "2026-12-02", "against_previous": {
            "thumbs_up": {"difference": -0.3, "p_value": 0.001},
            "correction_rate": {"difference": 0.1, "p_value": 0.2},
            "rating": {"difference": 0.5, "p_value": 0.0001}}}],
    }  # fmt: skip
    assert reasons(metrics, trigger) == [
        "monitoring: monitoring_error_rate missed",
        "quality drop: thumbs_up of v2 on 2026-12-02 -0.3 (p 0.001)",
    ]


def test_a_reason_no_stage_can_show_is_refused_at_its_line(tmp_path: Path, cli: Any) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("id: t\npipeline: [{name: report}]\nreliability:\n"
                    "  retraining_trigger: {when: [monitoring]}\n")  # fmt: skip
    said = cli("validate", str(path))
    assert said.code == 1
    assert (f"{path}:4: reliability.retraining_trigger.when[0]: 'monitoring' is shown by "
            "reliability.monitoring (and its stage), which is not set") in said.text  # fmt: skip


@pytest.mark.live
def test_a_live_daemon_launches_once_for_a_drift_and_not_again_within_the_cooldown(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    from tests.integration.test_live_webserver import dagster_daemon, dequeued_every_second

    reference, current = _samples(tmp_path, shift=5.0)
    experiment = _triggered(reference, current, default_status="running")
    folder = tmp_path / "experiments"
    folder.mkdir()
    data = experiment.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    (folder / "drifted.yaml").write_text(yaml.safe_dump(data))
    assert run(experiment, run_id="first").status == "completed"  # the run that shows drift
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(dequeued_every_second(ROOT / "dagster.yaml")))
    env = subprocess_env(DAGSTER_HOME=str(home), CRUCIBLE_ARTIFACTS_DIR=str(artifacts_dir),
                         CRUCIBLE_EXPERIMENTS_DIR=str(folder))  # fmt: skip
    migrate_instance(home)
    log = tmp_path / "daemon.log"
    with (
        dagster_daemon(env, log),
        instance_at(home) as instance,
    ):
        launched = _wait_for_ended_run(instance, log)
        record = instance.get_run_record_by_id(launched.run_id)
        ended = record.end_time if record is not None and record.end_time else time.time()
        sensor_ticks = _ticks_after(instance, ended, launched.run_id, log)
        runs = instance.get_runs(dg.RunsFilter(tags={"crucible/retrain_trigger": "drifted"}))
    assert [r.run_id for r in runs] == [launched.run_id]
    assert launched.status == dg.DagsterRunStatus.SUCCESS
    assert launched.tags["crucible/retrain_reason"] == "drift in age"
    assert launched.tags["crucible/retrain_after_run"] == "first"
    # the launched run shows drift too: the sensor looked at it and held back
    manifest = json.loads(
        (artifacts_dir / "drifted" / launched.run_id / "manifest.json").read_text()
    )
    assert manifest["metrics"]["drift"]["drifted"] == ["age"]
    assert any(
        f"(run {launched.run_id}: drift in age)" in (t.skip_reason or "") for t in sensor_ticks
    )


def _wait_for_ended_run(instance: dg.DagsterInstance, log: Path) -> dg.DagsterRun:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        runs = instance.get_runs(dg.RunsFilter(tags={"crucible/retrain_trigger": "drifted"}))
        ended = [r for r in runs if r.is_finished]
        if ended:
            return ended[0]
        time.sleep(0.5)
    raise AssertionError("no launched run ended; daemon log:\n" + log.read_text()[-3000:])


def _ticks_after(instance: dg.DagsterInstance, after: float, run_id: str, log: Path) -> list[Any]:
    """The sensor's ticks once the launched run has ended, up to the first that read that run:
    one such tick that launched nothing shows the sensor held (the daemon looks every 5 s
    whatever the sensor's interval, so each further tick was 5 s of an idle machine)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ticks = [t for t in instance.get_ticks(_sensor_origin_id(instance), _selector_id(instance))
                 if t.timestamp > after]  # fmt: skip
        if any(run_id in (t.skip_reason or "") for t in ticks):
            return ticks
        time.sleep(0.5)
    raise AssertionError("the sensor did not look again; daemon log:\n" + log.read_text()[-3000:])


def _sensor_state(instance: dg.DagsterInstance) -> Any:
    (state,) = [s for s in instance.all_instigator_state() if s.name == "drifted_retraining"]
    return state


def _sensor_origin_id(instance: dg.DagsterInstance) -> str:
    return str(_sensor_state(instance).instigator_origin_id)


def _selector_id(instance: dg.DagsterInstance) -> str:
    return str(_sensor_state(instance).selector_id)


def test_hostile_cursors_and_records_never_fail_a_tick(tmp_path: Path, artifacts_dir: Path) -> None:
    """Found by an outsider: a cursor time without an offset, in year 9999, or nested 100 000
    deep failed every tick; a manifest ending in the future stayed the latest run forever;
    drifted names that are not text, and booleans for p-values, became reasons."""
    now = datetime.now(timezone.utc)
    for cursor in ('{"launched_at": "2026-12-03T18:00:00", "after_run": "x"}',
                   '{"launched_at": "9999-12-31T00:00:00+00:00"}', "[" * 100_000):  # fmt: skip
        state = State.from_json(cursor, now)
        assert state.launched_at is None or state.launched_at.tzinfo is not None
    assert State.from_json('{"launched_at": "9999-12-31T00:00:00+00:00"}', now).launched_at is None
    reference, current = _samples(tmp_path, shift=5.0)
    experiment = _triggered(reference, current)
    assert run(experiment, run_id="real").status == "completed"
    future = artifacts_dir / "drifted" / "future"
    future.mkdir()
    manifest = json.loads((artifacts_dir / "drifted" / "real" / "manifest.json").read_text())
    manifest.update(run_id="future", ended_at="9999-12-31T00:00:00+00:00")
    (future / "manifest.json").write_text(json.dumps(manifest))
    trigger = experiment.reliability.retraining_trigger if experiment.reliability else None
    assert trigger is not None
    decision = decide(artifacts_dir / "drifted", trigger, State(), now)
    assert decision.run_id == "real" and decision.launch
    weird = {"drift": {"drifted": [1, None, "age\n\x1b[31m"]},
             "feedback_quality": [{"against_previous": {"thumbs_up": {"difference": True,
                                                                      "p_value": False}}}]}  # fmt: skip
    full = RetrainingTrigger(when=["drift", "quality_drop"])
    assert reasons(weird, full) == ["drift in age\\n\\x1b[31m"]


def test_a_launch_naming_no_experiment_is_refused_by_validate_and_the_loader(
    tmp_path: Path, cli: Any, artifacts_dir: Path
) -> None:
    """Found by an outsider: validate said valid and the loader refused the sensor, unlocated."""
    from crucible_dagster.dagster_plugin import definitions_from_folder

    reference, current = _samples(tmp_path, shift=5.0)
    data = _triggered(reference, current, launch="nope").model_dump(
        mode="json", by_alias=True, exclude_defaults=True
    )
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "drifted.yaml").write_text(yaml.safe_dump(data))
    said = cli("validate", str(folder))
    assert said.code == 1
    expected = ("drifted.yaml: reliability.retraining_trigger.launch: expected the id of an "
                "experiment loaded beside this one, found 'nope'")  # fmt: skip
    assert expected in said.text
    defs = definitions_from_folder(folder)  # the folder loads, the file is shown invalid
    names = [s.name for s in defs.sensors or []]
    assert "drifted_retraining" not in names and "crucible_invalid_experiments" in names
