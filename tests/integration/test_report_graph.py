"""A linear experiment's report asset is the graph of its stage ops (issue 26 item 2):
Materialize runs one step per stage, as the experiment's job does, tagged as the job's runs
are; the job keeps a plain job's flat run config; re-execution from failure resumes at the
failed stage; a bad option typed for a later stage fails the first step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from crucible_dagster import Experiment
from crucible_dagster.dagster_plugin import definitions_from_experiments
from crucible_dagster.runtime.run_record import experiment_hash
from tests.dagster_helpers import ephemeral_instance, instance_for_test
from tests.integration import jobs
from tests.integration.events import step_keys

STAGES = ["seed", "bench", "report"]


def reported(experiment_id: str, accuracy: float = 0.8) -> Experiment:
    return Experiment.model_validate(
        {
            "id": experiment_id,
            "seed": 5,
            "pipeline": [
                {
                    "name": "seed",
                    "module": "crucible_dagster.contrib.examples:SeedMetrics",
                    "options": {
                        "metrics": {
                            "accuracy": accuracy,
                            "scores": {
                                "treatment": [0.82, 0.85, 0.84, 0.86, 0.83, 0.85],
                                "baseline": [0.70, 0.72, 0.71, 0.69, 0.73, 0.70],
                            },
                        }
                    },
                },
                {"name": "bench", "options": {"data_source": "metrics", "data_key": "scores"}},
                {"name": "report"},
            ],
            "outputs": [{"name": "summary", "formats": ["markdown"]}],
            "quality_targets": [{"name": "floor", "metric": "accuracy", "op": ">=", "value": 0.7}],
        }
    )


def report_key(experiment_id: str) -> dg.AssetKey:
    return dg.AssetKey(["crucible", experiment_id, "summary"])


def check_key(experiment_id: str) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(report_key(experiment_id), "floor")


def materialize(
    defs: dg.Definitions, instance: dg.DagsterInstance, *experiment_ids: str
) -> dg.ExecuteInProcessResult:
    """What the catalog's Materialize does: Dagster's asset job on the reports and checks."""
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={report_key(e) for e in experiment_ids},
        asset_check_selection={check_key(e) for e in experiment_ids},
    )
    return job.execute_in_process(instance=instance)


def started(result: Any) -> list[str]:
    return [
        e.step_key
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.STEP_START and e.step_key
    ]


def test_materialize_runs_a_step_per_stage_tagged_as_the_jobs_runs(artifacts_dir: Path) -> None:
    experiment = reported("graphed")
    defs = definitions_from_experiments([experiment, reported("other")])
    with ephemeral_instance() as instance:
        result = materialize(defs, instance, "graphed")
        assert result.success
        # the stages of the job, one step each, then the checks on the report
        assert started(result) == [f"graphed__stages.{s}" for s in [*STAGES, "checks"]]
        run = instance.get_run_by_id(result.run_id)
        assert run is not None
        assert run.tags["crucible/experiment"] == "graphed"
        assert run.tags["crucible/ir_hash"] == experiment_hash(experiment)[:16]
        (evaluation,) = result.get_asset_check_evaluations()
        assert evaluation.asset_check_key == check_key("graphed") and evaluation.passed
        # the verdict the report stage recorded in this run, not a re-check of another run
        assert "crucible/rechecked" not in evaluation.metadata
        event = instance.get_latest_materialization_event(report_key("graphed"))
        assert event is not None and event.run_id == result.run_id
        assert instance.get_latest_materialization_event(report_key("other")) is None
        job = defs.resolve_job_def("graphed")  # the job runs the same steps
        ran = job.execute_in_process(instance=instance)
        assert started(ran) == started(result)
        assert ran.dagster_run.tags["crucible/experiment"] == "graphed"
    assert sorted(p.name for p in (artifacts_dir / "graphed").iterdir()) == sorted(
        [result.run_id, ran.run_id]
    )


def test_materializing_several_experiments_runs_each_ones_stages(artifacts_dir: Path) -> None:
    defs = definitions_from_experiments([reported("first"), reported("second", 0.5)])
    with ephemeral_instance() as instance:
        result = materialize(defs, instance, "first", "second")
        assert result.success
        assert set(started(result)) == {
            f"{e}__stages.{s}" for e in ("first", "second") for s in [*STAGES, "checks"]
        }
        run = instance.get_run_by_id(result.run_id)
        assert run is not None and run.tags["crucible/experiments"] == "first,second"
        assert "crucible/experiment" not in run.tags
        verdicts = {e.asset_check_key: e.passed for e in result.get_asset_check_evaluations()}
        assert verdicts == {check_key("first"): True, check_key("second"): False}
        for experiment in ("first", "second"):
            event = instance.get_latest_materialization_event(report_key(experiment))
            assert event is not None and event.run_id == result.run_id


def test_the_job_takes_a_plain_jobs_flat_run_config(artifacts_dir: Path) -> None:
    """The Launchpad's shape: ``ops: {<stage>: {config: ...}}`` beside ``resources``,
    ``loggers`` and ``execution``, pre-filled from the file; a bad option typed for a later
    stage fails the first step, before any stage runs."""
    defs = definitions_from_experiments([reported("configured")])
    job = defs.resolve_job_def("configured")
    schema = job.run_config_schema.config_type
    assert set(schema.fields) == {"ops", "resources", "loggers", "execution"}  # type: ignore[attr-defined]
    ops = schema.fields["ops"].config_type.fields  # type: ignore[attr-defined]
    assert set(ops) == set(STAGES)
    bench = ops["bench"].config_type.fields["config"].config_type.fields
    assert bench["data_key"].default_value == "scores"
    resources = schema.fields["resources"].config_type.fields  # type: ignore[attr-defined]
    crucible = resources["crucible"].config_type.fields["config"]
    assert crucible.default_value["seed"] == 5  # the file's seed
    config = {
        "ops": {"bench": {"config": {"data_source": "metrics", "data_key": "scores"}}},
        "resources": {"crucible": {"config": {"seed": 7}}},
        "loggers": {"console": {"config": {"log_level": "INFO"}}},
        "execution": {"config": {"retries": {"enabled": {}}}},
    }
    with ephemeral_instance() as instance:
        result = job.execute_in_process(instance=instance, run_config=config)
        assert result.success
        manifest = json.loads(
            (artifacts_dir / "configured" / result.run_id / "manifest.json").read_text()
        )
        assert manifest["seed"] == 7
        assert manifest["stages"]["bench"]["options"]["data_key"] == "scores"
        bad = job.execute_in_process(
            instance=instance,
            run_config={"ops": {"bench": {"config": {"alpha": 1.5}}}},
            raise_on_error=False,
        )
    assert not bad.success
    assert started(bad) == ["configured__stages.seed"]  # no stage ran: checked at the start
    (failure,) = [e for e in bad.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "bench.alpha: expected a number in (0, 1), got 1.5" in str(
        failure.step_failure_data.error.message
    )


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CRUCIBLE_TEST_WORKDIR", str(tmp_path))
    return tmp_path


def test_reexecution_from_failure_resumes_at_the_failed_stage(
    workdir: Path, artifacts_dir: Path
) -> None:
    (workdir / "fail.flag").touch()
    report = dg.AssetKey(["crucible", "counting_report", "summary"])
    graph = "counting_report__stages"
    with instance_for_test() as instance:
        job = dg.reconstructable(jobs.counting_report_job)
        with dg.execute_job(job, instance=instance) as failed:
            assert not failed.success
        assert instance.get_latest_materialization_event(report) is None
        (workdir / "fail.flag").unlink()
        options = dg.ReexecutionOptions.from_failure(failed.run_id, instance)
        with dg.execute_job(job, instance=instance, reexecution_options=options) as retried:
            assert retried.success
            assert step_keys(retried, dg.DagsterEventType.STEP_START) == {
                f"{graph}.{s}" for s in ("third", "fourth", "report")
            }
        event = instance.get_latest_materialization_event(report)
        assert event is not None and event.run_id == retried.run_id
    counts = {n: int((workdir / f"{n}.count").read_text()) for n in ("first", "third")}
    assert counts == {"first": 1, "third": 2}
    manifest = json.loads(
        (artifacts_dir / "counting_report" / retried.run_id / "manifest.json").read_text()
    )
    assert manifest["status"] == "completed"
    assert {s for s, v in manifest["stages"].items() if v["status"] == "completed"} == {
        "first",
        "second",
        "third",
        "fourth",
        "report",
    }
