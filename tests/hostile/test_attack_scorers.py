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
