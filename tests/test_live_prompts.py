"""Prompts against the bundled OpenAI-compatible test server: the messages sent are the ones
recorded, few-shot turns included; a template that fails on one sample stops the run before
any request; a backend that takes text gets the user message; a sweep compares two prompts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from crucible_dagster import Experiment
from crucible_dagster.contrib.llm_server import llm_server
from crucible_dagster.runtime.runner import run
from crucible_dagster.sweeps.standalone import run_sweep
from tests.conftest import Cli


def backend(url: str) -> dict[str, Any]:
    return {
        "id": "openai_compatible",
        "endpoint_url": url,
        "options": {"model": "m", "cache": False},
    }


def prompt_experiment(url: str, prompt: Any, **extra: Any) -> Experiment:
    return Experiment.model_validate(
        {
            "id": "prompted",
            "seed": 11,
            "backend": backend(url),
            "pipeline": [
                {"name": "seed", "module": "tests.helpers:SeedArithmetic", "options": {"count": 4}},
                {"name": "predict", "options": {"prompt": prompt}},
                {"name": "score", "options": {"metric": "exact_match"}},
            ],
            **extra,
        }
    )


@pytest.mark.slow  # a run directory and its Parquet table, over a second
def test_the_messages_sent_are_the_messages_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    shots = [{"question": f"{i}+{i}", "reference": str(2 * i)} for i in range(5)]
    (tmp_path / "shots.jsonl").write_text("".join(json.dumps(s) + "\n" for s in shots))
    prompt = {
        "system": "Add the numbers.",
        "user": "{{ question }}",
        "few_shot": {"file": "shots.jsonl", "n": 2},
    }
    with llm_server() as (url, server):
        result = run(prompt_experiment(url, prompt))
    assert result.status == "completed", result.failure
    table = pd.read_parquet(Path(str(result.run_dir)) / "predictions.parquet")
    sent = {body["messages"][-1]["content"]: body["messages"] for body in server.bodies}
    assert len(server.bodies) == 4
    for text in table["messages"]:
        recorded = json.loads(str(text))
        assert recorded == sent[recorded[-1]["content"]]  # byte for byte what the server got
        assert [m["role"] for m in recorded] == [
            "system",
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
        ]
        assert recorded[1]["content"] in {s["question"] for s in shots}
    # one draw for the run: every sample saw the same two shots
    assert len({json.dumps(json.loads(m)[1:5]) for m in table["messages"]}) == 1
    assert result.context.metrics["score"]["variants"]["model"]["mean"] == 1.0  # sums answered


def test_a_field_missing_from_one_sample_stops_the_run_before_any_request() -> None:
    with llm_server() as (url, server):
        experiment = Experiment.model_validate(
            {
                "id": "prompted",
                "backend": backend(url),
                "pipeline": [
                    {
                        "name": "seed",
                        "module": "tests.helpers:SeedQuestions",
                        "options": {"count": 3},
                    },
                    {"name": "predict", "options": {"prompt": "{{ input }} {{ hint }}"}},
                ],
            }
        )
        result = run(experiment)
    assert result.status == "failed" and result.failure is not None
    assert result.failure.reason == "invalid_prompt"
    assert "sample 'q0' user: 'hint' is undefined" in result.failure.message
    assert server.requests == {}  # nothing was sent


def test_a_backend_that_takes_text_gets_the_rendered_user_message() -> None:
    experiment = Experiment.model_validate(
        {
            "id": "prompted_text",
            "backend": {"id": "callable", "options": {"function": "tests.helpers:sum_texts"}},
            "pipeline": [
                {"name": "seed", "module": "tests.helpers:SeedArithmetic", "options": {"count": 3}},
                {
                    "name": "predict",
                    "options": {"prompt": {"system": "ignored", "user": "{{ question }}"}},
                },
                {"name": "score"},
            ],
        }
    )
    result = run(experiment)
    assert result.status == "completed", result.failure
    table = result.context.assigns["predictions"]
    assert table["prediction"].tolist() == ["1", "3", "5"]  # 0+1, 1+2, 2+3
    assert json.loads(table["messages"][0])[0] == {"role": "system", "content": "ignored"}


@pytest.mark.slow  # four trials and the sweep's comparison report
def test_a_sweep_over_two_prompts_is_one_experiment_with_readable_trials() -> None:
    prompts = [
        {"name": "terse", "user": "{{ question }}"},
        {"name": "chatty", "user": "What is {{ question }}?"},  # the server answers yes/no
    ]
    with llm_server() as (url, server):
        experiment = prompt_experiment(
            url,
            "${params.prompt}",
            parameters={"prompt": prompts},
            seeds=[1, 2],
            sweep={"metric": "score.variants.model.mean"},
        )
        result = run_sweep(experiment)
    assert result.ok
    by_trial = {o.trial.trial_id: o for o in result.outcomes}
    assert set(by_trial) == {
        "prompt_terse__seed_1", "prompt_terse__seed_2", "prompt_chatty__seed_1", "prompt_chatty__seed_2"
    }  # fmt: skip
    assert by_trial["prompt_terse__seed_1"].metrics["score"]["variants"]["model"]["mean"] == 1.0
    assert by_trial["prompt_chatty__seed_1"].metrics["score"]["variants"]["model"]["mean"] == 0.0
    assert set(result.comparison["configurations"]) == {"prompt_terse", "prompt_chatty"}
    # both prompts asked the same samples: compared sample by sample, 4 samples x 2 seeds, every
    # pair discordant one way, so McNemar's exact p is 2 x 0.5^8 (the binomial's two tails)
    assert result.comparison["design"]["kind"] == "per_sample"
    (mcnemar,) = [
        c for c in result.comparison["comparison"]["comparisons"] if c["test"] == "mcnemar"
    ]
    assert mcnemar["p_value"] == pytest.approx(2 * 0.5**8)
    asked = {body["messages"][-1]["content"] for body in server.bodies}
    assert "What is 0+1?" in asked and "0+1" in asked


@pytest.mark.slow  # loads two splits and writes a run directory: over a second
def test_a_benchmark_loaded_by_the_dataset_loader_with_shots_from_its_train_split() -> None:
    """The loader's DataFrame of examples (gsm8k's shipped sample, test split) reaches predict
    as assigns['examples']; the shots come from the train split through the same loader."""
    with llm_server() as (url, server):
        experiment = Experiment.model_validate(
            {
                "id": "gsm8k_prompted",
                "seed": 2,
                "dataset": {"name": "gsm8k", "split": "test"},
                "backend": backend(url),
                "pipeline": [
                    {
                        "name": "predict",
                        "options": {
                            "prompt": {
                                "user": "Question: {{ input }}",
                                "few_shot": {"split": "train", "n": 2},
                            }
                        },
                    }
                ],
            }
        )
        result = run(experiment)
    assert result.status == "completed", result.failure
    from crucible_dagster.datasets import load_dataset

    test = load_dataset(experiment.dataset.model_copy(update={"split": "test"}), 2).examples
    train = load_dataset(experiment.dataset.model_copy(update={"split": "train"}), 2).examples
    table = result.context.assigns["predictions"]
    assert table["sample_id"].tolist() == [str(i) for i in test.index]
    assert table["reference"].tolist() == test["reference"].tolist()
    assert len({json.dumps(b["messages"][:-1]) for b in server.bodies}) == 1  # one draw
    for body in server.bodies:
        shots = body["messages"][:-1]
        assert [m["role"] for m in shots] == ["user", "assistant"] * 2
        assert {m["content"] for m in shots[1::2]} <= set(train["reference"])
        assert {m["content"] for m in shots[::2]} <= {f"Question: {q}" for q in train["input"]}
    assert {b["messages"][-1]["content"] for b in server.bodies} == {
        f"Question: {q}" for q in test["input"]
    }


@pytest.mark.slow  # a dry run, then a two-trial sweep with its comparison report
def test_the_dry_run_counts_the_rendered_prompts_of_a_prompt_sweep(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan renders each trial's prompt (system, shots, question) as predict will: with the
    test server's own tokenizer (words) its prompt tokens are what the server then counts."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shots.jsonl").write_text(
        "".join(
            json.dumps({"question": f"{i}+{i}", "reference": str(2 * i)}) + "\n" for i in range(4)
        )
    )
    prompts = [
        {"name": "terse", "user": "{{ question }}"},
        {
            "name": "shots",
            "system": "You add two numbers and say only the sum.",
            "user": "{{ question }}",
            "few_shot": {"file": "shots.jsonl", "n": 3},
        },
    ]
    with llm_server() as (url, server):
        data = prompt_experiment(url, "${params.prompt}").model_dump(mode="json", exclude_none=True)
        data["backend"]["options"].update({"tokenizer": "words", "expected_completion_tokens": 1})
        data.update(parameters={"prompt": prompts}, sweep={"metric": "score.variants.model.mean"})
        path = tmp_path / "sweep.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        plan = json.loads(cli("plan", path, "--cost", "--json").out)
        assert server.bodies == []  # the plan sent nothing
        assert cli("run", path).code == 0
    sent_words = sum(len(str(m["content"]).split()) for b in server.bodies for m in b["messages"])
    assert plan["total"]["requests"] == len(server.bodies) == 8
    assert plan["total"]["prompt_tokens"] == sent_words
    by_trial = {row["trial"]: row["prompt_tokens"] for row in plan["variants"]}
    assert by_trial["prompt_terse"] == 4  # four one-word sums
    assert by_trial["prompt_shots"] == 4 * (9 + 3 * 2 + 1)  # system, three shots, the question
