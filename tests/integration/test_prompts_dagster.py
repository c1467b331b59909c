"""Prompts under Dagster: a sweep over two prompts runs as one job, its trials named by the
prompts; a prompt typed in the Launchpad's config is the one sent, and a bad one fails the run
at its first step, before any request, naming the field and the line in the template."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from crucible_dagster import Experiment
from crucible_dagster.contrib.llm_server import llm_server
from crucible_dagster.dagster_plugin import build_job
from tests.dagster_helpers import ephemeral_instance


def experiment(url: str, prompt: Any, **extra: Any) -> Experiment:
    return Experiment.model_validate(
        {
            "id": "prompts_dagster",
            "seed": 3,
            "backend": {
                "id": "openai_compatible",
                "endpoint_url": url,
                "options": {"model": "m", "cache": False},
            },
            "pipeline": [
                {"name": "seed", "module": "tests.helpers:SeedArithmetic", "options": {"count": 3}},
                {"name": "predict", "options": {"prompt": prompt}},
                {"name": "score"},
            ],
            **extra,
        }
    )


def test_a_prompt_sweep_runs_as_one_job_with_trials_named_by_prompt(artifacts_dir: Path) -> None:
    prompts = [
        {"name": "terse", "user": "{{ question }}"},
        {"name": "chatty", "system": "Be helpful.", "user": "What is {{ question }}?"},
    ]
    with llm_server() as (url, server), ephemeral_instance() as instance:
        job = build_job(
            experiment(
                url,
                "${params.prompt}",
                parameters={"prompt": prompts},
                sweep={"metric": "score.variants.model.mean"},
            )
        )
        result = job.execute_in_process(instance=instance)
    assert result.success
    assert len(server.bodies) == 6  # 2 prompts x 3 samples
    paths = list(artifacts_dir.rglob("predictions.parquet"))
    tables = {str(p.relative_to(artifacts_dir)): pd.read_parquet(p) for p in paths}
    asked = {
        where.split("/")[-2].split(".")[-1]: json.loads(t["messages"][0])
        for where, t in tables.items()
    }  # each trial's run directory is named by its trial id: the prompt's name
    assert set(asked) == {"prompt_terse", "prompt_chatty"}, list(tables)
    assert asked["prompt_terse"] == [{"role": "user", "content": "0+1"}]
    assert asked["prompt_chatty"] == [
        {"role": "system", "content": "Be helpful."},
        {"role": "user", "content": "What is 0+1?"},
    ]


def test_the_launchpad_prompt_is_the_one_sent_and_a_bad_one_fails_before_any_request() -> None:
    with llm_server() as (url, server), ephemeral_instance() as instance:
        job = build_job(experiment(url, "{{ question }}"))
        typed = {"ops": {"predict": {"config": {"prompt": {"user": "{{ question }} = ?"}}}}}
        result = job.execute_in_process(instance=instance, run_config=typed)
        assert result.success
        assert {b["messages"][-1]["content"] for b in server.bodies} == {
            "0+1 = ?",
            "1+2 = ?",
            "2+3 = ?",
        }
        bad = {"ops": {"predict": {"config": {"prompt": {"user": "ok\n{{ question.__class__ }}"}}}}}
        failed = job.execute_in_process(instance=instance, run_config=bad, raise_on_error=False)
    assert not failed.success
    failures = [e for e in failed.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failures[0].step_key == "seed"  # every stage's options are checked at the first step
    message = failures[0].step_failure_data.error.message
    assert "predict.prompt.user: line 2 of the template: '__class__' is refused" in message
    assert len(server.bodies) == 3  # only the first run's requests


def test_request_figures_are_step_and_report_metadata(artifacts_dir: Path) -> None:
    """Issue 27: the predict step's requests (count, p95 latency, cost, failure rate) as numbers
    the UI plots across runs, on the step's output and on the report asset."""
    with llm_server() as (url, server), ephemeral_instance() as instance:
        server.fail_next(1, status=503)
        exp = experiment(
            url,
            {"user": "{{ question }}"},
            outputs=[{"name": "summary", "formats": ["json"]}],
        )
        data = exp.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        data["backend"]["options"]["backoff_s"] = 0.01
        data["pipeline"].append({"name": "report"})
        result = build_job(Experiment.model_validate(data)).execute_in_process(instance=instance)
        assert result.success
        (output,) = [
            e
            for e in result.all_events
            if e.event_type == dg.DagsterEventType.STEP_OUTPUT
            and e.step_key == "prompts_dagster__stages.predict"
        ]
        step = output.step_output_data.metadata
        assert step["telemetry/model/requests"].value == 4  # 3 samples, one retried
        assert step["telemetry/model/failure_rate"].value == 0
        assert step["telemetry/model/p95_ms"].value > 0
        event = instance.get_latest_materialization_event(
            dg.AssetKey(["crucible", "prompts_dagster", "summary"])
        )
        assert event is not None and event.asset_materialization is not None
        report = event.asset_materialization.metadata
        assert report["telemetry/model/requests"].value == 4
        assert report["telemetry/model/cost"].value == step["telemetry/model/cost"].value
