"""Several scorers under Dagster: the same columns, metrics and per-scorer bench as standalone,
a judge answering through the bundled test server, and a scorer typed into the Launchpad
checked as the file's would be (before the first stage)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from crucible_dagster.contrib.llm_server import default_answer, llm_server
from crucible_dagster.experiment.loading import loads_experiment

pytestmark = [pytest.mark.integration]


def experiment_text(url: str, cache: Path) -> str:
    backend = f"{{model: MODEL, cache_dir: '{cache}', max_retries: 0}}"
    return (
        "id: scorers_dagster\nseed: 3\npipeline:\n"
        "  - {name: seed, module: 'tests.helpers:SeedQuestions', options: {count: 12}}\n"
        "  - name: predict\n    options:\n      inputs: examples\n      reference: output\n"
        "      variants:\n"
        f"        m1: {{id: openai_compatible, endpoint_url: '{url}', options: "
        + backend.replace("MODEL", "m1")
        + "}\n"
        f"        m2: {{id: openai_compatible, endpoint_url: '{url}', options: "
        + backend.replace("MODEL", "m2")
        + "}\n"
        "  - name: score\n    options:\n      scorers:\n"
        "        - {name: em, id: exact_match}\n        - {name: f1, id: token_f1}\n"
        "        - name: judge\n          id: judge\n          options:\n"
        "            rubric: 'Grade: {{ example.input }} -> {{ prediction }}'\n"
        f"            backend: {{id: openai_compatible, endpoint_url: '{url}', "
        f"options: {{model: judge, cache_dir: '{cache}'}}}}\n"
        "  - name: bench\n"
    )


def answer(model: str, messages: list[dict[str, Any]]) -> str:
    text = str(messages[-1]["content"])
    if model == "judge":
        return "Score: 8" if text.endswith("yes") else "Score: 3"
    return default_answer(model, messages)


def test_several_scorers_under_a_dagster_run(tmp_path: Path, artifacts_dir: Path) -> None:
    from crucible_dagster.dagster_plugin import build_job
    from tests.dagster_helpers import ephemeral_instance

    with llm_server() as (url, server):
        server.answer = answer
        job = build_job(loads_experiment(experiment_text(url, tmp_path / "cache")))
        with ephemeral_instance() as instance:
            result = job.execute_in_process(instance=instance)
        assert result.success
        judged = server.requests["judge"]
    (run_dir,) = (artifacts_dir / "scorers_dagster").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    table = pd.read_parquet(run_dir / "predictions.parquet")
    assert {"score", "score_em", "score_f1", "score_judge"} <= set(table.columns)
    assert set(table["score_judge"]) <= {3.0, 8.0} and table["score_judge_error"].isna().all()
    # the judge is asked once per distinct (question, answer): at most 2 answers a question
    assert 12 <= judged <= 24
    scorers = manifest["metrics"]["score"]["scorers"]
    assert set(scorers) == {"em", "f1", "judge"}
    for variant in ("m1", "m2"):
        rows = table[table["variant"] == variant]
        assert scorers["em"]["variants"][variant]["mean"] == pytest.approx(
            (rows["prediction"] == rows["reference"]).mean()
        )
    bench = manifest["metrics"]["bench"]
    assert {r["test"] for r in bench["comparisons"]} == {"mcnemar", "bootstrap"}
    assert set(bench["by_scorer"]) == {"f1", "judge"}


def test_a_scorer_typed_in_the_launchpad_is_checked_before_the_first_stage(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    import dagster as dg

    from crucible_dagster.dagster_plugin import build_job
    from tests.dagster_helpers import ephemeral_instance

    job = build_job(loads_experiment(experiment_text("http://127.0.0.1:9/v1", tmp_path / "c")))
    config = {"scorers": [{"id": "exact_match"}, {"id": "os:system"}]}
    with ephemeral_instance() as instance:
        result = job.execute_in_process(
            instance=instance, run_config={"ops": {"score": {"config": config}}},
            raise_on_error=False,
        )  # fmt: skip
    assert not result.success
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert [f.step_key for f in failures] == ["seed"], "it failed before the first stage ran"
    message = failures[0].step_failure_data.error.message
    assert "score.scorers[1].id: " in message and "names the standard library" in message
