"""A raced sweep under Dagster: its rounds are steps with survivors, dropped and evidence as
metadata, dropped configurations' seeds never run, and the numbers are ``crucible run``'s."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from crucible_dagster import Experiment
from crucible_dagster.dagster_plugin import build_job
from crucible_dagster.sweeps.standalone import run_sweep
from tests.dagster_helpers import ephemeral_instance, instance_for_test
from tests.integration.events import sweep_graph, sweep_step
from tests.test_racing_sweep import RACED


def test_raced_sweep_rounds_are_steps_with_their_evidence(artifacts_dir: Path) -> None:
    # two far-apart configurations: the race ends at round 4, rounds 5-10 end at once
    sweep = {**RACED["sweep"], "trials_per_step": 1}  # a step per trial, as on Celery
    experiment = Experiment.model_validate(
        {**RACED, "parameters": {"level": [0.05, 0.95]}, "sweep": sweep}
    )
    job = build_job(experiment)
    nodes = sweep_graph(job).node_dict
    rounds = [n for n in nodes if n.startswith("race_round_")]
    assert len(rounds) == 10  # 20 seeds: a first look of 3, then 17 in rounds of 2
    assert "compare_trials" in nodes
    with ephemeral_instance() as instance:
        result = job.execute_in_process(instance=instance)
        assert result.success
        metadata = {
            sweep_step(e.step_key, "raced"): e.event_specific_data.metadata
            for e in result.all_events
            if e.event_type_value == "STEP_OUTPUT"
            and sweep_step(e.step_key, "raced").startswith("race_round_")
            and e.event_specific_data.step_output_handle.output_name == "result"
        }
        # each round's trials ran in steps of their own, one per survivor x seed here
        trial_steps = {
            sweep_step(e.step_key, "raced")
            for e in result.all_events
            if e.step_key and "_trials[" in e.step_key
        }
    first = metadata["race_round_1"]
    assert "crucible/evidence" in first and first["crucible/survivors"].value
    dropped = [m["crucible/dropped"].value for m in metadata.values() if "crucible/dropped" in m]
    assert any("level_0_05" in d for d in dropped)
    ended = [m for m in metadata.values() if "crucible/dropped" not in m]
    assert ended and all("ended before round" in m["crucible/race"].value for m in ended)

    run_dir = artifacts_dir / "raced" / result.run_id
    record = json.loads((run_dir / "race.json").read_text())
    standalone = run_sweep(experiment, run_id="standalone", artifacts=str(artifacts_dir))
    alone = json.loads((artifacts_dir / "raced" / "standalone" / "race.json").read_text())
    assert record["rounds"] == alone["rounds"] and record["survivors"] == ["level_0_95"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert manifest["metrics"]["sweep"]["race"] == standalone.comparison["race"]
    assert not (run_dir / "trials" / "level_0_05__seed_20").exists()
    assert "round_1_trials[level_0_05__seed_1]" in trial_steps
    assert not any("level_0_05__seed_20" in step for step in trial_steps)


def test_a_race_over_samples_under_dagster_asks_only_survivors(
    artifacts_dir: Path, tmp_path: Path
) -> None:
    """Round by round in steps, the server asked for the survivors only: the same requests, the
    same race as ``crucible run``'s."""
    from crucible_dagster.contrib.llm_server import llm_server
    from tests.test_racing_data import answer, asked, raced_llm, sums_file

    data_file = sums_file(tmp_path)
    racing = {"block": "samples", "first_look": 10, "round_size": 10}
    with llm_server() as (url, server):
        server.answer = answer
        experiment = raced_llm(url, data_file, racing)
        with ephemeral_instance() as instance:
            result = build_job(experiment).execute_in_process(instance=instance)
        assert result.success
        under_dagster = asked(server)
        server.bodies.clear()
        run_sweep(experiment, run_id="standalone", artifacts=str(artifacts_dir))
        alone = asked(server)
    record = json.loads((artifacts_dir / "raced_llm" / result.run_id / "race.json").read_text())
    expected = json.loads((artifacts_dir / "raced_llm" / "standalone" / "race.json").read_text())
    assert record["rounds"] == expected["rounds"] and record["survivors"] == ["model_right"]
    assert under_dagster == alone
    assert sum(len(q) for q in under_dagster.values()) == record["evaluations"] < 180


def test_re_execution_from_a_failed_round_reaches_the_same_decisions(
    artifacts_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Round 3 (seeds 6 and 7) fails on seed 6; re-executed from failure, only the failed
    trials' steps and the rounds after them run, and the race decides as a race run whole."""
    from crucible_dagster.sweeps.standalone import run_sweep as whole_sweep
    from tests.integration import jobs

    monkeypatch.setenv("CRUCIBLE_TEST_WORKDIR", str(tmp_path))
    job = dg.reconstructable(jobs.raced_job)
    (tmp_path / "seed_6.flag").touch()
    with instance_for_test() as instance:
        with dg.execute_job(job, instance=instance) as failed:
            assert not failed.success
        (tmp_path / "seed_6.flag").unlink()
        options = dg.ReexecutionOptions.from_failure(failed.run_id, instance)
        with dg.execute_job(job, instance=instance, reexecution_options=options) as retried:
            assert retried.success
            started = {
                sweep_step(e.step_key, "raced")
                for e in retried.all_events
                if e.event_type_value == "STEP_START"
            }
    assert not any(s.startswith(("plan_race", "round_1_", "round_2_")) for s in started)
    assert "round_3_trials[level_0_05__seed_6]" in started
    assert "round_3_trials[level_0_05__seed_7]" not in started  # it completed in the first run
    first_dir = artifacts_dir / "raced" / failed.run_id
    assert len(json.loads((first_dir / "race.json").read_text())["rounds"]) == 2
    got = json.loads((artifacts_dir / "raced" / retried.run_id / "race.json").read_text())
    whole_sweep(Experiment.model_validate(RACED), run_id="whole", artifacts=str(artifacts_dir))
    expected = json.loads((artifacts_dir / "raced" / "whole" / "race.json").read_text())
    assert got["rounds"] == expected["rounds"] and got["survivors"] == expected["survivors"]


def test_the_experiment_budget_stops_a_race_under_dagster_as_it_does_alone(
    artifacts_dir: Path, tmp_path: Path
) -> None:
    """max_requests 18 over rounds of 4 questions x 3 models: round 2's trials run out (6 of
    their 12 questions refused), the race stops there, the run's record ends budget_exhausted,
    and the remaining round steps plan nothing."""
    from crucible_dagster.contrib.llm_server import llm_server
    from tests.test_racing_data import answer, raced_llm, sums_file

    data_file = sums_file(tmp_path)
    racing = {"block": "samples", "first_look": 4, "round_size": 4, "alpha": 0.001}
    with llm_server() as (url, server):
        server.answer = answer
        experiment = raced_llm(url, data_file, racing, budget={"max_requests": 18})
        with ephemeral_instance() as instance:
            result = build_job(experiment).execute_in_process(instance=instance)
        assert sum(server.requests.values()) == 18
    assert result.success
    run_dir = artifacts_dir / "raced_llm" / result.run_id
    record = json.loads((run_dir / "race.json").read_text())
    assert len(record["rounds"]) == 1 and record["finished"]
    assert record["finish_reason"].startswith("the experiment's budget is spent (max_requests 18")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "budget_exhausted"
    assert not any(
        sweep_step(e.step_key, "raced_llm").startswith("round_3_trials") for e in result.all_events
    )


def test_a_re_executed_round_costs_what_both_runs_spent_on_it(
    artifacts_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Round 2 fails after its models were asked; re-executed from failure, its trials ask
    again in the new run (its own ledger). The round's recorded cost is what the first run spent
    on it since it was planned plus what the re-execution spent: every request counted once."""
    from crucible_dagster.contrib.llm_server import llm_server
    from crucible_dagster.racing.race import block_order
    from tests.integration import jobs
    from tests.test_racing_data import QUESTIONS, answer, sums_file

    order = block_order([f"q{i}" for i in range(QUESTIONS)], "samples", 0)
    monkeypatch.setenv("CRUCIBLE_TEST_WORKDIR", str(tmp_path))
    monkeypatch.setenv("RACE_LLM_DATA", str(sums_file(tmp_path)))
    monkeypatch.setenv("RACE_LLM_FAIL_ON", order[5])  # the second round's second sample
    (tmp_path / "fail.flag").touch()
    with llm_server() as (url, server), instance_for_test() as instance:
        server.answer = answer
        monkeypatch.setenv("RACE_LLM_URL", url)
        job = dg.reconstructable(jobs.priced_race_job)
        with dg.execute_job(job, instance=instance) as failed:
            assert not failed.success
        first_run = sum(server.requests.values())
        (tmp_path / "fail.flag").unlink()
        options = dg.ReexecutionOptions.from_failure(failed.run_id, instance)
        with dg.execute_job(job, instance=instance, reexecution_options=options) as retried:
            assert retried.success
        total = sum(server.requests.values())
    record = json.loads((artifacts_dir / "raced_llm" / retried.run_id / "race.json").read_text())
    first, second = record["rounds"][:2]
    assert first_run == 4 * 3 + 4 * len(second["survivors"])  # round 1, then round 2 failed
    assert first["cost"] == pytest.approx(0.003 * 4 * 3)
    # round 2: asked in the failed run and again in the re-execution
    assert second["cost"] == pytest.approx(0.003 * 2 * 4 * len(second["survivors"]))
    assert sum(r["cost"] for r in record["rounds"]) == pytest.approx(0.003 * total)
