"""Races over the dataset (``racing.block: samples | folds``) and the race's budget: a raced LLM
sweep asks the model about a round's samples only for the configurations still in the race
(counted by the test server), folds are blocks of samples, and the race stops when its own
budget or the experiment's is spent, saying which."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crucible_dagster import Experiment
from crucible_dagster.contrib.llm_server import llm_server
from crucible_dagster.runtime.driver import Run
from crucible_dagster.runtime.run_record import read_manifest
from crucible_dagster.sweeps.grid import expand_grid
from crucible_dagster.sweeps.raced import race_trials
from crucible_dagster.sweeps.standalone import run_sweep

pytestmark = pytest.mark.slow  # each runs a real raced sweep against a real HTTP server

QUESTIONS = 60


def sums_file(folder: Path, count: int = QUESTIONS) -> Path:
    rows = [
        {"id": f"q{i}", "input": f"{i}+{i % 7}", "output": str(i + i % 7)} for i in range(count)
    ]
    path = folder / "sums.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def answer(model: str, messages: list[dict[str, Any]]) -> str:
    """``right`` adds, ``wrong`` never does, ``coin`` adds on the questions whose first term is
    even: three configurations with known accuracies 1, 0 and 1/2."""
    text = str(messages[-1]["content"])
    a, b = (int(x) for x in text.split("+"))
    if model == "right" or (model == "coin" and a % 2 == 0):
        return str(a + b)
    return "0" if a + b else "1"


def raced_llm(url: str, data_file: Path, racing: dict[str, Any], **extra: Any) -> Experiment:
    backend = {
        "id": "openai_compatible",
        "endpoint_url": url,
        "options": {
            "model": "${params.model}",
            "cache": False,
            "concurrency": 1,
            "price_per_million_input": 1000.0,
            "price_per_million_output": 2000.0,
            "tokenizer": "words",
            "expected_completion_tokens": 1,
        },
    }
    dataset = {
        "name": "sums",
        "provider": "local",
        "format": "jsonl",
        "options": {"path": str(data_file)},
        **extra.pop("dataset", {}),
    }
    return Experiment.model_validate(
        {
            "id": "raced_llm",
            "parameters": {"model": ["right", "wrong", "coin"]},
            "dataset": dataset,
            "sweep": {
                "metric": "score.variants.model.mean",
                "strategy": "racing",
                "racing": racing,
            },
            "pipeline": [
                {
                    "name": "predict",
                    "options": {
                        "inputs": "examples",
                        "reference": "output",
                        "variants": {"model": backend},
                    },
                },
                {"name": "score", "options": {"metric": "exact_match"}},
            ],
            **extra,
        }
    )


def asked(server: Any) -> dict[str, list[str]]:
    """model -> the questions the server was asked, in order."""
    found: dict[str, list[str]] = {}
    for body in server.bodies:
        found.setdefault(body["model"], []).append(str(body["messages"][-1]["content"]))
    return found


def test_a_raced_llm_sweep_asks_only_the_survivors(tmp_path: Path) -> None:
    data_file = sums_file(tmp_path)
    racing = {"block": "samples", "first_look": 10, "round_size": 10}
    with llm_server() as (url, server):
        server.answer = answer
        experiment = raced_llm(url, data_file, racing)
        result = run_sweep(experiment, run_id="r", artifacts=str(tmp_path / "runs"))
        questions = asked(server)
    race = json.loads((tmp_path / "runs" / "raced_llm" / "r" / "race.json").read_text())
    assert race["survivors"] == ["model_right"]
    # every request was for a configuration still in the race, on that round's samples
    texts = {f"q{i}": f"{i}+{i % 7}" for i in range(QUESTIONS)}
    for model in ("right", "wrong", "coin"):
        expected = [
            texts[b]
            for r in race["rounds"]
            if f"model_{model}" in r["survivors"]
            for b in r["blocks"]
        ]
        assert questions.get(model, []) == expected, model
    assert sum(server.requests.values()) == race["evaluations"] < 3 * QUESTIONS
    dropped = {c: r["index"] for r in race["rounds"] for c in r["dropped"]}
    assert dropped["model_wrong"] == 1  # 10 questions all wrong against all right
    assert dropped["model_wrong"] < dropped["model_coin"]
    # samples are raced in a seeded random order, not the file's
    assert race["block_order"] != [f"q{i}" for i in range(QUESTIONS)]
    assert sorted(race["block_order"]) == sorted(texts)
    summary = result.comparison["race"]
    assert summary["block"] == "samples" and summary["survivors"] == ["model_right"]
    base = tmp_path / "runs" / "raced_llm" / "r"
    manifest = read_manifest(base)
    assert manifest["status"] == "completed"
    assert manifest["stages"]["trial:model_wrong"]["status"] == "completed"
    assert manifest["stages"]["trial:model_wrong__round_1"]["status"] == "completed"
    assert "trial:model_wrong__round_2" not in manifest["stages"]
    ids = json.loads((base / "race_rounds" / "round_1.json").read_text())["ids"]
    assert ids == race["rounds"][0]["blocks"]


def test_an_interrupted_race_resumes_without_asking_again(tmp_path: Path) -> None:
    """Two rounds, then a re-execution from the first run: the same decisions as a race run
    whole, and the finished rounds' questions are not asked again."""
    data_file = sums_file(tmp_path)
    racing = {"block": "samples", "first_look": 10, "round_size": 10}
    runs = tmp_path / "runs"
    with llm_server() as (url, server):
        server.answer = answer
        experiment = raced_llm(url, data_file, racing)
        whole = run_sweep(experiment, run_id="whole", artifacts=str(runs))
        trials = expand_grid(experiment)
        first = Run.at(str(runs), experiment, run_id="first", steps=[], trials=[])
        race_trials(experiment, trials, first, rounds=2)
        before = len(server.bodies)
        again = Run.at(str(runs), experiment, run_id="again", steps=[], trials=[])
        raced = race_trials(experiment, trials, again, earlier=[runs / "raced_llm" / "first"])
        later = {str(b["messages"][-1]["content"]) for b in server.bodies[before:]}
    expected = json.loads((runs / "raced_llm" / "whole" / "race.json").read_text())
    got = json.loads((runs / "raced_llm" / "again" / "race.json").read_text())
    assert got["rounds"] == expected["rounds"] and got["survivors"] == expected["survivors"]
    assert raced.race is not None and whole.comparison["race"]["survivors"] == raced.race.survivors
    texts = {f"q{i}": f"{i}+{i % 7}" for i in range(QUESTIONS)}
    first_two = {texts[b] for r in expected["rounds"][:2] for b in r["blocks"]}
    assert later and not later & first_two


def test_folds_are_blocks_of_samples(tmp_path: Path) -> None:
    data_file = sums_file(tmp_path)
    racing = {"block": "folds", "first_look": 2, "round_size": 1, "method": "frace"}
    with llm_server() as (url, server):
        server.answer = answer
        experiment = raced_llm(url, data_file, racing, dataset={"folds": 6})
        result = run_sweep(experiment, run_id="r", artifacts=str(tmp_path / "runs"))
        questions = asked(server)
    race = result.comparison["race"]
    assert race["block"] == "folds"
    record = json.loads((tmp_path / "runs" / "raced_llm" / "r" / "race.json").read_text())
    assert record["block_order"] == [f"fold_{i}" for i in range(6)]
    # every fold holds 10 of the 60 questions; right scores 1 on each, wrong 0
    assert record["scores"]["model_right"][:2] == [1.0, 1.0]
    assert record["scores"]["model_wrong"][:2] == [0.0, 0.0]
    per_round = {r["index"]: len(r["survivors"]) for r in race["rounds"]}
    assert sum(len(q) for q in questions.values()) == 10 * sum(
        len(r["blocks"]) * per_round[r["index"]] for r in race["rounds"]
    )


def test_the_race_budget_in_evaluations_stops_it(tmp_path: Path) -> None:
    data_file = sums_file(tmp_path)
    racing = {"block": "samples", "first_look": 4, "round_size": 4, "budget": 20, "alpha": 0.001}
    with llm_server() as (url, server):
        server.answer = answer
        result = run_sweep(
            raced_llm(url, data_file, racing), run_id="r", artifacts=str(tmp_path / "runs")
        )
    race = result.comparison["race"]
    assert race["evaluations"] <= 20 and sum(server.requests.values()) == race["evaluations"]
    assert race["finish_reason"].startswith("budget of 20 evaluations spent")
    assert read_manifest(tmp_path / "runs" / "raced_llm" / "r")["status"] == "completed"


def test_the_race_budget_in_cost_stops_it_before_it_is_passed(tmp_path: Path) -> None:
    """Each request costs 1000 * 1 input word + 2000 * 1 output word per million = 0.003: a cost
    budget of 0.1 pays for 33 evaluations; the race, estimating from its rounds, stops below."""
    data_file = sums_file(tmp_path)
    racing = {"block": "samples", "first_look": 4, "round_size": 4, "alpha": 0.001}
    racing["budget"] = {"cost": 0.1}
    with llm_server() as (url, server):
        server.answer = answer
        experiment = raced_llm(url, data_file, racing, budget={"max_cost": 100.0})
        result = run_sweep(experiment, run_id="r", artifacts=str(tmp_path / "runs"))
    race = result.comparison["race"]
    assert race["cost"] <= 0.1 + 1e-9
    assert race["cost"] == pytest.approx(0.003 * sum(server.requests.values()))
    assert race["finish_reason"].startswith("budget of cost 0.1 spent")
    report = (tmp_path / "runs" / "raced_llm" / "r" / "sweep.md").read_text()
    assert "sequential race over samples at alpha 0.001" in report and "; cost 0.0" in report


def test_the_experiment_budget_stops_the_race_and_the_sweep_says_so(tmp_path: Path) -> None:
    data_file = sums_file(tmp_path)
    racing = {"block": "samples", "first_look": 4, "round_size": 4, "alpha": 0.001}
    with llm_server() as (url, server):
        server.answer = answer
        experiment = raced_llm(url, data_file, racing, budget={"max_requests": 18})
        result = run_sweep(experiment, run_id="r", artifacts=str(tmp_path / "runs"))
    assert sum(server.requests.values()) == 18
    race = result.comparison["race"]
    assert race["finish_reason"].startswith("the experiment's budget is spent (max_requests 18")
    assert len(race["rounds"]) == 1  # the second round (12 asked, 6 refused) is not scored
    base = tmp_path / "runs" / "raced_llm" / "r"
    assert read_manifest(base)["status"] == "budget_exhausted"
    assert json.loads((base / "race.json").read_text())["finished"] is True


def test_progress_counts_against_the_most_trials_the_race_can_run(tmp_path: Path) -> None:
    """``crucible run``'s progress: over 20 declared samples (limit) in rounds of 10, at most 3
    configurations x 2 rounds; over data of undeclared size the count so far, never past it."""
    data_file = sums_file(tmp_path)
    racing = {"block": "samples", "first_look": 10, "round_size": 10}
    seen: dict[str, list[tuple[int, int]]] = {"limit": [], "all": []}
    with llm_server() as (url, server):
        server.answer = answer
        for name, extra in (("limit", {"dataset": {"limit": 20}}), ("all", {})):

            def progress(done: int, total: int, _: Any, name: str = name) -> None:
                seen[name].append((done, total))

            run_sweep(
                raced_llm(url, data_file, racing, **extra),
                run_id=name,
                artifacts=str(tmp_path / "runs"),
                progress=progress,
            )
    assert {total for _, total in seen["limit"]} == {6}
    assert all(done <= total for done, total in seen["limit"] + seen["all"])
    assert [done for done, _ in seen["all"]] == list(range(1, len(seen["all"]) + 1))
