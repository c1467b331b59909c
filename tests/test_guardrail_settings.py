"""reliability.guardrails: profiles, every documented pattern against its example, redaction."""

from __future__ import annotations

import pandas as pd
import pytest

from crucible_dagster import Experiment
from crucible_dagster.experiment.ir import Guardrail
from crucible_dagster.guardrails.settings import (
    JAILBREAK,
    PROFILES,
    PROMPT_INJECTION,
    Pattern,
    find_patterns,
    resolve,
)
from crucible_dagster.runtime.runner import run

BENIGN = [
    "What is the capital of France?",
    "Please summarise the previous paragraph in two sentences.",
    "The developer fixed the bug in debug builds yesterday.",
    "Show me the instructions for assembling the shelf.",
]


@pytest.mark.parametrize("pattern", PROMPT_INJECTION + JAILBREAK, ids=lambda p: p.name)
def test_every_pattern_catches_its_documented_example(pattern: Pattern) -> None:
    assert {name for name, _, _ in find_patterns(pattern.example, (pattern,))} == {pattern.name}


def test_ordinary_requests_are_not_flagged() -> None:
    for text in BENIGN:
        assert find_patterns(text, PROMPT_INJECTION + JAILBREAK) == [], text


def test_profiles_and_explicit_fields() -> None:
    assert resolve(Guardrail(profiles=["permissive"])) == PROFILES["permissive"]
    assert resolve(Guardrail(profiles=["strict"]))["fail_on_detection"] is True
    union = resolve(Guardrail(profiles=["permissive", "moderate"]))
    assert union["pii_redaction"] and not union["fail_on_detection"]
    explicit = resolve(
        Guardrail(profiles=["strict"], fail_on_detection=False, jailbreak_detection=False)
    )
    assert not explicit["fail_on_detection"] and not explicit["jailbreak_detection"]


def experiment(guardrails: dict[str, object]) -> Experiment:
    return Experiment.model_validate(
        {
            "id": "guarded",
            "reliability": {"guardrails": guardrails},
            "pipeline": [
                {"name": "seed", "module": "tests.helpers:SeedRiskyExamples"},
                {"name": "guardrails"},
            ],
        }
    )


def test_detection_and_redaction_in_examples_predictions_and_outputs() -> None:
    result = run(experiment({"profiles": ["moderate"]}))
    assert result.status == "completed"
    ctx = result.context
    summary = ctx.metrics["guardrails"]
    assert summary["by_detector"] == {"pii": 3, "prompt_injection": 1, "jailbreak": 1}
    kinds = sorted(v["kind"] for v in ctx.assigns["guardrail_violations"])
    assert kinds == ["dan", "email", "email", "ignore_previous_instructions", "phone"]
    sources = sorted(v["source"] for v in ctx.assigns["guardrail_violations"])
    assert sources == ["examples", "examples", "examples", "outputs", "predictions"]
    assert all("text" not in v for v in ctx.assigns["guardrail_violations"])  # never the PII itself
    examples = ctx.assigns["examples"]
    assert examples[0]["input"] == "Mail me at [REDACTED:email] please"
    assert "jane@example.org" not in str(examples) and "555" not in str(examples)
    table: pd.DataFrame = ctx.assigns["predictions"]
    assert table["prediction"].tolist() == ["Contact [REDACTED:email]", "42"]
    assert ctx.outputs == ("call [REDACTED:phone]",)
    assert summary["redacted"] == 3  # one example, one prediction, one output
    # the findings as telemetry: each detector's kind and count, never the text (issue 27)
    from pathlib import Path

    from crucible_dagster.telemetry import read_events

    path = Path(str(result.run_dir)) / "telemetry.jsonl"
    events, problems = read_events(path)
    found = {e.finding: e.count for e in events if e.event == "guardrail_findings"}
    assert problems == [] and found == {"jailbreak": 1, "pii": 3, "prompt_injection": 1}
    assert "jane@example.org" not in path.read_text() and "415 555 0100" not in path.read_text()


def test_strict_profile_fails_on_detection_and_permissive_only_counts_pii() -> None:
    failed = run(experiment({"profiles": ["strict"]}))
    assert failed.status == "failed" and failed.failure is not None
    assert "guardrails detected jailbreak: 1, pii: 3, prompt_injection: 1" in failed.failure.message
    relaxed = run(experiment({"profiles": ["permissive"]}))
    assert relaxed.context.metrics["guardrails"]["by_detector"] == {"pii": 3}
    assert "jane@example.org" in str(relaxed.context.assigns["examples"])  # detected, not redacted
