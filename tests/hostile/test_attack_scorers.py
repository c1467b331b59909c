"""An outsider's attack on the scorers (issue 24, section 3): a model's prediction is a network
answer, and a reference or a pattern is the user's; a scorer given hostile ones must answer that
sample (a score or its error) quickly, never hang the run. Before the fixes the regex scorer
backtracked for hours on ``(a|aa)*$`` and json_match's ``extract`` read 10^11 characters on a
prediction of unclosed brackets."""

from __future__ import annotations

from typing import Any

import pytest

from crucible_dagster.scorers.base import Sample, Scored
from crucible_dagster.scorers.registry import ScorerRef, build_scorer


def scored(scorer_id: str, prediction: Any, reference: Any, **options: Any) -> Scored:
    scorer = build_scorer(ScorerRef(id=scorer_id, options=options))
    (one,) = scorer.score_all([Sample("v", "s", prediction, reference)])
    return one


@pytest.mark.slow  # each waits out the match's one-second timeout
@pytest.mark.parametrize(
    ("options", "reference"),
    [({"pattern": "(a|aa)*$"}, None), ({}, "(a|aa)*$")],
    ids=["option_pattern", "reference_as_pattern"],
)
def test_a_pattern_that_backtracks_exponentially_is_stopped_as_that_samples_error(
    options: dict[str, Any], reference: Any
) -> None:
    one = scored("regex", "a" * 40 + "b", reference, **options)
    assert one.value is None and one.error is not None
    assert "backtracks too much" in one.error and "\n" not in one.error


def test_the_regex_scorer_keeps_re_syntax_and_its_options() -> None:
    assert scored("regex", "The answer is 42.", None, pattern=r"\b\d+\b").value == 1.0
    assert scored("regex", "ANSWER", None, pattern="answer", ignore_case=True).value == 1.0
    assert scored("regex", "answer 42", None, pattern=r"\d+", match="fullmatch").value == 0.0
    assert scored("regex", "aaaa", "a++").value == 1.0  # possessive, as the error suggests


@pytest.mark.parametrize(
    "prediction",
    ["[1," * 300_000, "[" * 1_000_000, '{"a":' * 100_000, "{" * 500_000 + '{"answer": 4}'],
    ids=["unclosed_list", "deep_brackets", "unclosed_objects", "json_after_many_openings"],
)
def test_json_match_extract_reads_a_hostile_prediction_a_bounded_number_of_times(
    prediction: str,
) -> None:
    one = scored("json_match", prediction, '{"answer": 4}')
    assert one == Scored(0.0)  # not JSON it could find: no match, not an error


def test_json_match_still_extracts_json_from_prose() -> None:
    text = 'Sure [see 1]. Here it is: ```json\n{"answer": 4, "items": [1, 2]}\n```'
    assert scored("json_match", text, '{"answer": 4, "items": [1, 2]}').value == 1.0
    assert scored("json_match", text, '{"items": [7, 2]}', fields=["items.1"]).value == 1.0


def test_a_field_path_with_a_non_ascii_digit_is_a_missing_field_not_a_crash() -> None:
    one = scored("json_match", '{"a": [1]}', '{"a": [1]}', fields=["a.\u00b2"])
    assert one.value is None and one.error == "the reference has no field 'a.\u00b2'"


@pytest.mark.slow  # waits out the match's one-second timeout
def test_the_numeric_scorers_pattern_is_stopped_too() -> None:
    one = scored("numeric", "a" * 40 + "b", "1", extract="pattern", pattern="(a|aa)*$")
    assert one.value is None and "backtracks too much" in str(one.error)
    assert scored("numeric", "answer is 42.", "42", extract="pattern", pattern="is (.*)").value == 1


@pytest.mark.slow  # waits out the match's one-second timeout
def test_a_judges_pattern_on_a_hostile_answer_is_that_samples_error() -> None:
    from crucible_dagster.contrib.llm_server import llm_server

    with llm_server() as (url, server):
        server.answer = lambda model, messages: "a" * 40 + "b"
        scorer = build_scorer(
            ScorerRef(
                id="judge",
                options={
                    "rubric": "Rate {{ prediction }}",
                    "pattern": "(a|aa)*$",
                    "backend": {
                        "id": "openai_compatible",
                        "endpoint_url": url,
                        "options": {"model": "judge", "cache": False, "max_retries": 0},
                    },
                },
            )
        )
        (one,) = scorer.score_all([Sample("v", "s", "x", "y")])
    assert one.value is None and "the judge's answer: the pattern took over 1 s" in str(one.error)


def test_a_judges_answer_of_unclosed_braces_is_read_a_bounded_number_of_times() -> None:
    from crucible_dagster.scorers.judge import parse_score

    assert parse_score('{"a": ' * 100_000, (1.0, 10.0)) is None  # was seconds per sample
    assert parse_score('{"note": 1} {"score": 7}', (1.0, 10.0)) == 7.0


@pytest.mark.parametrize("scale", [[0, float("inf")], [float("-inf"), 1], [0, float("nan")]])
def test_a_judges_scale_must_be_finite(scale: list[float]) -> None:
    """[0, inf] took any number a judge wrote (1e308 included) as a score."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="finite number"):
        build_scorer(
            ScorerRef(
                id="judge",
                options={"rubric": "{{ prediction }}", "backend": {"id": "noop"}, "scale": scale},
            )
        )
