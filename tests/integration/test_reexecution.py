"""Multiprocess execution and re-execution from failure through reconstructable jobs."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from tests.dagster_helpers import instance_for_test
from tests.integration import jobs
from tests.integration.events import step_keys


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CRUCIBLE_TEST_WORKDIR", str(tmp_path))
    return tmp_path


def counts(workdir: Path) -> dict[str, int]:
    return {
        name: int((workdir / f"{name}.count").read_text())
        if (workdir / f"{name}.count").exists()
        else 0
        for name in ("first", "second", "third", "fourth")
    }


def test_reexecute_from_failure_does_not_rerun_earlier_stages(workdir: Path) -> None:
    (workdir / "fail.flag").touch()
    with instance_for_test() as instance:
        with dg.execute_job(dg.reconstructable(jobs.counting_job), instance=instance) as failed:
            assert not failed.success
        assert counts(workdir) == {"first": 1, "second": 1, "third": 1, "fourth": 0}
        (workdir / "fail.flag").unlink()
        options = dg.ReexecutionOptions.from_failure(failed.run_id, instance)
        with dg.execute_job(
            dg.reconstructable(jobs.counting_job), instance=instance, reexecution_options=options
        ) as retried:
            assert retried.success
            started = step_keys(retried, dg.DagsterEventType.STEP_START)
            assert started == {"third", "fourth"}
            final = retried.output_for_node("fourth")
        assert counts(workdir) == {"first": 1, "second": 1, "third": 2, "fourth": 1}
        # the earlier stages' contexts came from storage: their tables and completion records are intact
        assert final.completed_stages() == ["first", "second", "third", "fourth"]
        assert final.run_id == retried.run_id
        assert final.assigns["table"].shape == (1000, 2)


def test_multiprocess_executor(workdir: Path) -> None:
    # Step processes fork from a forkserver that kept the environment of its first use in this
    # worker, so the counter files are named absolutely through the ops' Launchpad config.
    files = {
        name: {"config": {"counter_file": str(workdir / f"{name}.count")}}
        for name in ("first", "second", "third", "fourth")
    }
    with (
        instance_for_test() as instance,
        dg.execute_job(
            dg.reconstructable(jobs.counting_job_multiprocess),
            instance=instance,
            run_config={"ops": files},
        ) as result,
    ):
        assert result.success
        step_pids = {
            e.pid for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START
        }
        run_pids = {
            e.pid for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_START
        }
        assert len(step_pids) == 4 and not step_pids & run_pids  # each stage ran in its own process
        assert result.output_for_node("fourth").completed_stages() == [
            "first",
            "second",
            "third",
            "fourth",
        ]
    assert counts(workdir) == {"first": 1, "second": 1, "third": 1, "fourth": 1}


if __name__ == "__main__":  # multiprocess children import this module by path
    pass
