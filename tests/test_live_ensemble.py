"""The ensemble stage calling its members live against the test server: a cascade stops
calling once enough agree, a hedged ensemble calls the next member only when the last is late,
and a member past timeout_ms does not vote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crucible_dagster import Experiment
from crucible_dagster.contrib.llm_server import default_answer, llm_server
from crucible_dagster.runtime.runner import run

pytestmark = pytest.mark.slow  # real HTTP round trips, with deliberate stalls

# A late member is very late and an on-time one has ample time: which member voted is what the
# tests check, and a loaded machine (a decision of a 150 ms timeout once took 840 ms under the
# full suite) must not turn on-time into late. Timing itself is the benchmarks' business.
SLOW_S = 2.0
ON_TIME_MS = 500


def _votes(result: Any) -> list[Any]:
    """The run's ``vote`` telemetry events (one per sample), read back from its run directory."""
    from crucible_dagster.telemetry import read_events

    events, problems = read_events(Path(str(result.run_dir)) / "telemetry.jsonl")
    assert problems == []
    return [e for e in events if e.event == "vote"]


def ensemble_experiment(url: str, models: list[str], ensemble: dict[str, Any]) -> Experiment:
    members = {
        m: {"id": "openai_compatible", "endpoint_url": url, "options": {"model": m, "cache": False}}
        for m in models
    }
    return Experiment.model_validate(
        {
            "id": "live_ensemble",
            "reliability": {"ensemble": {"strategy": "majority", **ensemble}},
            "pipeline": [
                {"name": "seed", "module": "tests.helpers:SeedQuestions"},
                {
                    "name": "ensemble",
                    "options": {"members": members, "inputs": "examples", "reference": "output"},
                },
            ],
        }
    )


def test_cascade_calls_the_third_member_only_where_the_first_two_disagree() -> None:
    questions = [f"is {i} a lucky number?" for i in range(12)]
    disagree = sum(
        default_answer("a", [{"content": q}]) != default_answer("b", [{"content": q}])
        for q in questions
    )
    assert 0 < disagree < 12  # the server's models do disagree, sometimes
    with llm_server() as (url, server):
        experiment = ensemble_experiment(
            url, ["a", "b", "c"], {"execution_mode": "cascade", "min_agreement": 0.6}
        )
        result = run(experiment)
    assert result.status == "completed"
    assert server.requests == {
        "a": 12,
        "b": 12,
        "c": disagree,
    }  # c never called where a and b agreed
    summary = result.context.metrics["ensemble"]
    assert summary["calls"] == {"a": 12, "b": 12, "c": disagree}
    table = result.context.assigns["predictions"]
    for row in table.itertuples():
        text = f"{row.sample_id.replace('q', 'is ')} a lucky number?"
        votes = [default_answer(m, [{"content": text}]) for m in "abc"]
        assert row.prediction == max(set(votes), key=votes.count)
    # each sample's vote as a telemetry event: the cascade stopped early where a and b agreed
    voted = _votes(result)
    assert len(voted) == 12 and {e.stage for e in voted} == {"ensemble"}
    assert sum(bool(e.stopped_early) for e in voted) == 12 - disagree
    assert sorted(e.members_asked or 0 for e in voted) == sorted(
        [2] * (12 - disagree) + [3] * disagree
    )


def test_parallel_calls_everyone_and_a_late_member_does_not_vote() -> None:
    with llm_server() as (url, server):
        server.latency_s = lambda n, body: SLOW_S if body["model"] == "slow" else 0.0
        experiment = ensemble_experiment(
            url, ["slow", "a", "b"], {"execution_mode": "parallel", "timeout_ms": ON_TIME_MS}
        )
        result = run(experiment)
    assert server.requests == {"slow": 12, "a": 12, "b": 12}
    voted = _votes(result)
    assert [(e.members_asked, e.members_counted) for e in voted] == [(3, 2)] * 12  # slow: late
    assert result.context.metrics["ensemble"]["latency"]["max_ms"] < SLOW_S * 1000  # not waited
    for row in result.context.assigns["predictions"].itertuples():
        text = f"{row.sample_id.replace('q', 'is ')} a lucky number?"
        votes = [default_answer(m, [{"content": text}]) for m in ("a", "b")]
        if votes[0] == votes[1]:
            assert row.prediction == votes[0]


def test_hedged_calls_the_next_member_only_when_the_first_is_late() -> None:
    with llm_server() as (url, server):
        server.latency_s = lambda n, body: SLOW_S if body["model"] == "slow" else 0.0
        late = run(
            ensemble_experiment(
                url, ["slow", "fast"], {"execution_mode": "hedged", "timeout_ms": 50}
            )
        )
        assert server.requests == {"slow": 12, "fast": 12}
        voted = _votes(late)
        assert [(e.members_asked, e.members_counted) for e in voted] == [(2, 1)] * 12
        assert late.context.metrics["ensemble"]["latency"]["max_ms"] < SLOW_S * 1000  # fast first
        server.requests.clear()
        prompt = run(
            ensemble_experiment(
                url, ["fast", "slow"], {"execution_mode": "hedged", "timeout_ms": ON_TIME_MS}
            )
        )
        assert server.requests == {"fast": 12}  # fast answered in time: slow never called
    assert prompt.status == "completed"
