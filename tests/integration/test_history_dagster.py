"""The regression gate and the run history under Dagster, on SQLite and on PostgreSQL (issue 13):
the gate is the asset check ``no_regression`` on the report asset, read back from the instance;
``history`` reads the same runs from the run directories and from the instance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from crucible_dagster.dagster_plugin import build_job, definitions_from_experiments
from crucible_dagster.dagster_plugin.accept_job import ACCEPT_JOB, accept_job
from crucible_dagster.dagster_plugin.history_source import dagster_runs
from crucible_dagster.dagster_plugin.report_events import GATE_TAG
from crucible_dagster.dagster_plugin.resource import CrucibleResource
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator
from crucible_dagster.run_history import list_runs
from tests.conftest import ROOT
from tests.dagster_helpers import ephemeral_instance, instance_at, instance_for_test
from tests.integration.specs import check_specs
from tests.services import postgres_db, postgres_home
from tests.test_history import gated

REPORT_KEY = dg.AssetKey(["crucible", "gated", "summary"])

__all__ = ["postgres_db"]  # the fixture, imported for the Postgres case


def _scores(**options: Any) -> dict[str, Any]:
    return {"ops": {"scores": {"config": options}}}


def _scenario(instance: dg.DagsterInstance) -> list[tuple[str, str, bool, str]]:
    """Accepted first run, a degraded second run that fails the gate, a clean third that passes."""
    experiment = gated()
    job = build_job(experiment)
    first = job.execute_in_process(instance=instance)
    accepted = accept_job(CrucibleResource()).execute_in_process(
        instance=instance,
        run_config={
            "ops": {
                "accept_baseline": {
                    "config": {"experiment_id": "gated", "run_id": first.run_id, "note": "ok"}
                }
            }
        },
    )
    assert accepted.success
    second = job.execute_in_process(
        instance=instance, run_config=_scores(shift=-0.03, jitter_seed=2), raise_on_error=False
    )
    assert not second.success  # fail_run: the run fails once the reports are written
    third = job.execute_in_process(instance=instance, run_config=_scores(jitter_seed=3))
    assert third.success

    gate = experiment.regression_baseline
    assert gate is not None
    spec = CrucibleTranslator().get_asset_check_spec(experiment, gate)
    assert spec is not None
    check = spec.key
    assert check.name == "no_regression"
    executions = instance.event_log_storage.get_asset_check_execution_history(check, limit=10)
    by_run = {e.run_id: e for e in executions}
    assert set(by_run) == {first.run_id, second.run_id, third.run_id}
    for run, passed in ((first, True), (second, False), (third, True)):
        evaluation = by_run[run.run_id].event.dagster_event.event_specific_data
        assert evaluation.passed is passed
        metadata = evaluation.metadata
        if run is first:
            assert metadata["outcome"].value == "no_baseline"
            continue
        assert metadata["baseline_run_id"].value == first.run_id
        assert {"estimate", "ci_low", "ci_high", "p_value"} <= set(metadata)
    assert by_run[second.run_id].event.dagster_event.event_specific_data.severity == (
        dg.AssetCheckSeverity.ERROR
    )

    # the verdict where runs are listed: a tag on each run, and the report's headline metadata
    tags = [instance.get_run_by_id(r.run_id).tags.get(GATE_TAG) for r in (first, second, third)]
    assert tags == ["no_baseline", "regressed", "clean"]
    latest = instance.get_latest_materialization_event(REPORT_KEY)
    assert latest is not None and latest.run_id == third.run_id
    assert latest.asset_materialization.metadata[GATE_TAG].value == "clean"

    rows = list_runs("gated", sources=[lambda e: dagster_runs(e, instance)])
    assert [r.run_id for r in rows] == [first.run_id, second.run_id, third.run_id]
    return [(r.status, r.dagster_status or "", r.accepted, r.recorded_in) for r in rows]


EXPECTED = [
    ("completed", "success", True, "both"),
    ("failed", "failure", False, "both"),
    ("completed", "success", False, "both"),
]


def test_gate_and_history_on_sqlite(tmp_path: Path) -> None:
    with instance_for_test() as instance:
        assert _scenario(instance) == EXPECTED


@pytest.mark.postgres
def test_gate_and_history_on_postgres(
    postgres_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = postgres_home(postgres_db, tmp_path, monkeypatch)
    with instance_at(home) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert _scenario(instance) == EXPECTED  # the same rows as on SQLite


def _accepted_run_id(accepted: dg.ExecuteInProcessResult) -> str:
    """The run the accept job took, as its step's output metadata says."""
    assert accepted.success
    (metadata,) = [
        e.event_specific_data.metadata
        for e in accepted.all_events
        if e.event_type_value == "STEP_OUTPUT"
    ]
    return str(metadata["run_id"].value)


def test_a_regressed_run_the_gate_lets_succeed_carries_its_verdict_as_a_tag(
    artifacts_dir: Path,
) -> None:
    """With ``fail_run: false`` a regression is a green run: the ``crucible/gate`` tag is what
    tells it apart in the runs list (and what the list filters on)."""
    job = build_job(gated(fail_run=False))
    with ephemeral_instance() as instance:
        accepting = accept_job(CrucibleResource())
        latest = {"ops": {"accept_baseline": {"config": {"experiment_id": "gated"}}}}
        nothing_yet = accepting.execute_in_process(
            instance=instance, run_config=latest, raise_on_error=False
        )
        assert not nothing_yet.success  # no completed run to accept: said, nothing written
        (failure,) = [e for e in nothing_yet.all_events if e.is_step_failure]
        assert "expected a completed run of 'gated' to accept, found none" in str(
            failure.step_failure_data.error.message
        )
        assert not (artifacts_dir / "gated" / "baselines.jsonl").exists()
        first = job.execute_in_process(instance=instance)
        # no run id typed: the latest completed run becomes the baseline
        accepted = accepting.execute_in_process(instance=instance, run_config=latest)
        assert _accepted_run_id(accepted) == first.run_id
        worse = job.execute_in_process(
            instance=instance, run_config=_scores(shift=-0.03, jitter_seed=2)
        )
        assert worse.success  # the gate warns, it does not fail the run
        run = instance.get_run_by_id(worse.run_id)
        assert run is not None and run.tags.get(GATE_TAG) == "regressed"
        tagged = instance.get_run_ids(dg.RunsFilter(tags={GATE_TAG: "regressed"}))
        assert tagged == [worse.run_id]
        event = instance.get_latest_materialization_event(REPORT_KEY)
        assert event is not None and event.asset_materialization is not None
        assert event.asset_materialization.metadata[GATE_TAG].value == "regressed"

        # Materialize on the report asset runs the experiment as the asset's step: the same tag
        defs = definitions_from_experiments([gated(fail_run=False)])
        assets = [
            a
            for a in defs.assets or []
            if isinstance(a, dg.AssetsDefinition) and REPORT_KEY in a.keys
        ]
        materialized = dg.materialize(
            assets,
            instance=instance,
            resources={"crucible": CrucibleResource()},
            selection=[REPORT_KEY],
        )
        assert materialized.success
        run = instance.get_run_by_id(materialized.run_id)
        assert run is not None and run.tags.get(GATE_TAG) == "clean"
        # of three completed runs, the newest is the one taken when no run id is typed
        again = accepting.execute_in_process(instance=instance, run_config=latest)
        assert _accepted_run_id(again) == materialized.run_id


def test_the_gate_is_a_blocking_check_and_the_accept_job_is_there() -> None:
    defs = definitions_from_experiments([gated()])
    assert defs.resolve_job_def(ACCEPT_JOB) is not None
    checks = check_specs(defs)
    gate = next(spec for spec in checks if spec.name == "no_regression")
    assert gate.blocking


def test_the_accept_job_refuses_an_experiment_id_that_is_a_path(artifacts_dir: Path) -> None:
    from crucible_dagster import run

    # a completed run just outside the artifacts root: '..' would name it
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    assert run(gated(), run_id="r1", run_dir=artifacts_dir.parent / "r1").ok
    with ephemeral_instance() as instance:
        result = accept_job(CrucibleResource()).execute_in_process(
            instance=instance,
            run_config={
                "ops": {"accept_baseline": {"config": {"experiment_id": "..", "run_id": "r1"}}}
            },
            raise_on_error=False,
        )
    assert not result.success
    assert not list(artifacts_dir.parent.glob("**/baselines.jsonl"))


def test_history_reads_the_instance_where_dagster_home_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        result = build_job(gated()).execute_in_process(instance=instance)
    rows = list_runs("gated")  # the registered entry point: no sources passed
    assert [(r.run_id, r.recorded_in) for r in rows] == [(result.run_id, "both")]


@pytest.fixture(autouse=True)
def _no_dagster_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    yield
