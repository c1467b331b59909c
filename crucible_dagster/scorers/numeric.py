"""Scorers that read numbers: ``numeric`` (an answer within tolerance of the reference) and the
old ``absolute_error`` and ``squared_error``.

``numeric`` finds the number in free text the way a grader would: the last number by default
("... so the answer is 42."), or the first, or the group of a pattern of your own. "1,234",
"$5", "-3.5", "1e3", "½" is not a number (only digits are read). The reference is read the same
way, so a GSM8K answer ("... #### 42") is its last number. A prediction with no number scores
0 (it did not answer); a reference with no number is that sample's error (a data problem).
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from crucible_dagster.scorers.base import (
    ScoreProblem,
    Scorer,
    ScorerOptions,
    references_of,
    regex_of,
    stopped,
    user_pattern,
)

#: an optional sign not glued to a word ("x-1" is not minus one), an optional currency sign,
#: digits with thousands commas or without, a fraction, an exponent
NUMBER = re.compile(
    r"(?:(?<![\w)])(?P<sign>[-+−]))?[$€£]?"
    r"(?P<mantissa>\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?P<exponent>[eE][-+]?\d+)?"
)
MAX_TEXT_CHARS = 100_000


def as_number(match: re.Match[str]) -> float:
    sign = -1.0 if match.group("sign") in ("-", "−") else 1.0
    return sign * float(match.group("mantissa").replace(",", "") + (match.group("exponent") or ""))


def numbers_in(text: str) -> list[float]:
    """Every number in ``text``, in order."""
    return [as_number(m) for m in NUMBER.finditer(text[:MAX_TEXT_CHARS])]


def _compiled(value: str | None) -> str | None:
    if value is None:
        return None
    pattern = regex_of(value)
    if pattern.groups > 1:
        raise ValueError(f"expected at most one group (the number), found {pattern.groups}")
    return value


class NumericOptions(ScorerOptions):
    extract: Literal["last", "first", "pattern"] = Field(
        default="last", description="Which number of the prediction is its answer."
    )
    pattern: str | None = Field(
        default=None,
        description="With extract: pattern, a regular expression whose group (or whole "
        "match) holds the answer, e.g. 'answer is (.*)'; its last match is read.",
    )
    abs_tol: float = Field(default=0.0, ge=0, description="Absolute tolerance.")
    rel_tol: float = Field(
        default=0.0, ge=0, lt=1, description="Relative tolerance (0.01: within 1%)."
    )

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        return _compiled(value)

    @model_validator(mode="after")
    def _pattern_with_extract(self) -> NumericOptions:
        if (self.extract == "pattern") != (self.pattern is not None):
            raise ValueError("extract: pattern and pattern go together (set both or neither)")
        return self


def _number_of(value: Any, pattern: str | None, last: bool) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value)
    if pattern is not None:
        matches = stopped(user_pattern(pattern), "finditer", text[:MAX_TEXT_CHARS])
        if not matches:
            return None
        text = matches[-1].group(1 if matches[-1].re.groups else 0)
    found = numbers_in(text)
    if not found:
        return None
    return found[-1] if last else found[0]


class Numeric(Scorer[NumericOptions]):
    """1 when the prediction's number is within tolerance of the reference's, else 0."""

    binary = True
    description = "1 when the number in the prediction is within tolerance of the reference's"

    def score(self, prediction: Any, reference: Any) -> float:
        options = self.options
        answer = _number_of(prediction, options.pattern, options.extract != "first")
        if answer is None:
            return 0.0
        for each in references_of(reference):
            expected = _number_of(each, None, last=True)
            if expected is None:
                shown = str(each)[:80]
                raise ScoreProblem(f"the reference {shown!r} has no number")
            if math.isclose(answer, expected, rel_tol=options.rel_tol, abs_tol=options.abs_tol):
                return 1.0
        return 0.0


def _error(prediction: Any, reference: Any) -> float:
    try:
        return float(prediction) - float(reference)
    except (TypeError, ValueError):
        raise ScoreProblem(
            f"expected numbers, found {str(prediction)[:40]!r} and {str(reference)[:40]!r}"
        ) from None


class AbsoluteError(Scorer):
    """|prediction - reference| (lower is better)."""

    higher_is_better = False
    description = "|prediction - reference|, for numbers"

    def score(self, prediction: Any, reference: Any) -> float:
        return abs(_error(prediction, reference))


class SquaredError(Scorer):
    """(prediction - reference)² (lower is better)."""

    higher_is_better = False
    description = "(prediction - reference)², for numbers"

    def score(self, prediction: Any, reference: Any) -> float:
        return _error(prediction, reference) ** 2
