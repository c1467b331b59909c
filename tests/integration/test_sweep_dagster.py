"""Sweeps under Dagster: the same numbers as `crucible run`, and re-execution reruns only failed trials."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from crucible_dagster.sweeps.standalone import run_sweep
from tests.conftest import ROOT, subprocess_env
from tests.dagster_helpers import instance_at, instance_for_test
from tests.integration import jobs
from tests.integration.events import step_keys, sweep_comparison, sweep_steps
from tests.integration.test_dagster_cli import job_execute


def _numbers(comparison: dict) -> dict:
    """What must agree between two ways of running: summaries, tests, best configuration, variance."""
    inner = comparison["comparison"]
    return {
        "configurations": {
            k: {f: v[f] for f in ("n", "mean", "sd", "ci_low", "ci_high", "per_seed_means")}
            for k, v in comparison["configurations"].items()
        },
        "omnibus": inner["omnibus"],
        "comparisons": [
            {
                k: r[k]
                for k in (
                    "group_a",
                    "group_b",
                    "test",
                    "statistic",
                    "p_value",
                    "p_adjusted",
                    "estimate",
                    "ci_low",
                    "ci_high",
                )
            }
            for r in inner["comparisons"]
        ],
        "best": comparison["best"],
        "variance": comparison["variance"],
    }


def test_demo_sweep_same_numbers_in_dagster_and_crucible_run(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    home = job_execute("classifier_sweep", tmp_path, artifacts_dir, timeout=600)
    env = subprocess_env(DAGSTER_HOME=str(home), CRUCIBLE_ARTIFACTS_DIR=str(artifacts_dir))
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "crucible_dagster.cli",
            "run",
            "experiments/classifier_sweep.yaml",
            "--run-id",
            "cli",
            "--json",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert cli.returncode == 0, cli.stderr[-3000:]
    with instance_at(home) as instance:
        (run,) = instance.get_runs()
        steps = sweep_steps(
            (
                e.step_key
                for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
            ),
            "classifier_sweep",
        )
        # 20 trials, trials_per_step unset: four steps of 5, and still one run directory a trial
        assert {s for s in steps if s and s.startswith("run_trial[")} == {
            f"run_trial[trials_{start}_to_{start + 4}]" for start in (1, 6, 11, 16)
        }
        event = instance.get_latest_materialization_event(
            dg.AssetKey(["crucible", "classifier_sweep", "sweep"])
        )
        assert event is not None and event.run_id == run.run_id
    sweep_dir = artifacts_dir / "classifier_sweep" / run.run_id
    trial_manifests = [json.loads(p.read_text()) for p in sweep_dir.glob("trials/*/manifest.json")]
    assert len(trial_manifests) == 20
    assert {m["status"] for m in trial_manifests} == {"completed"}
    from_dagster = json.loads((sweep_dir / "sweep.json").read_text())
    from_cli = json.loads(cli.stdout)
    assert _numbers(from_dagster) == _numbers(from_cli)
    assert from_cli["trials"] == 20 and from_cli["comparison"]["omnibus"][0]["test"] == "friedman"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CRUCIBLE_TEST_WORKDIR", str(tmp_path))
    return tmp_path


def test_reexecution_reruns_only_the_failed_trial(workdir: Path, artifacts_dir: Path) -> None:
    (workdir / "fail_0.82_3.flag").touch()
    with instance_for_test() as instance:
        with dg.execute_job(dg.reconstructable(jobs.sweep_job), instance=instance) as failed:
            assert not failed.success
            failures = sweep_steps(
                step_keys(failed, dg.DagsterEventType.STEP_FAILURE), "light_sweep"
            )
        assert failures == {"run_trial[trials_1_to_10]"}  # the step holding the failed trial
        (workdir / "fail_0.82_3.flag").unlink()
        options = dg.ReexecutionOptions.from_failure(failed.run_id, instance)
        with dg.execute_job(
            dg.reconstructable(jobs.sweep_job), instance=instance, reexecution_options=options
        ) as retried:
            assert retried.success
            started = sweep_steps(step_keys(retried, dg.DagsterEventType.STEP_START), "light_sweep")
            assert started == {"run_trial[trials_1_to_10]", "compare_trials"}
            comparison = sweep_comparison(artifacts_dir, "light_sweep", retried.run_id)
            # inside the step, only the failed trial ran again; the other nine were read back
            rerun = artifacts_dir / "light_sweep" / retried.run_id / "trials"
            assert [p.name for p in rerun.iterdir()] == ["level_0_82__seed_3"]
    clean = run_sweep(jobs.sweep_experiment(), run_id="clean", artifacts=str(workdir / "clean"))
    assert _numbers(comparison) == _numbers(clean.comparison)


def test_sweep_trials_run_in_parallel_processes(workdir: Path) -> None:
    with (
        instance_for_test() as instance,
        dg.execute_job(
            dg.reconstructable(jobs.sweep_job_multiprocess), instance=instance
        ) as result,
    ):
        assert result.success
        trial_pids = {
            e.pid
            for e in result.all_events
            if e.event_type == dg.DagsterEventType.STEP_START
            and (e.step_key or "").startswith("light_sweep__sweep.run_trial[")
        }
        assert len(trial_pids) == 4  # each trial in its own process
        # the run directory the steps' processes used, as the sweep's report names it: they
        # come from a forkserver started by an earlier test of this worker, with its
        # CRUCIBLE_ARTIFACTS_DIR (one value in a real deployment)
        (event,) = result.get_asset_materialization_events()
        report = event.step_materialization_data.materialization.metadata["path/json"]
        comparison = json.loads(Path(str(report.value)).read_text())
    assert comparison["best"]["configuration"] == "level_0_9"


if __name__ == "__main__":
    pass
