"""Scorers that compare text: ``exact_match``, ``contains``, ``regex`` and ``token_f1``.

Normalisation is the user's choice (case, whitespace, punctuation, articles); the defaults of
``exact_match`` and ``contains`` (ignore case, strip the ends) are what the score stage's old
``metric:`` did, so a file that used it scores the same. ``token_f1`` normalises as the SQuAD
evaluation script does (lower case, no punctuation, no articles, single spaces) and takes the
best reference when a sample has several, as SQuAD does.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from typing import Any, Literal

from pydantic import Field, field_validator

from crucible_dagster.scorers.base import (
    ScoreProblem,
    Scorer,
    ScorerOptions,
    references_of,
    regex_of,
    stopped,
    user_pattern,
)

ARTICLES = re.compile(r"\b(a|an|the)\b", re.IGNORECASE)
#: the cap on a user's pattern's subject (a long text is cut here)
MAX_REGEX_CHARS = 100_000


def _is_punctuation(char: str) -> bool:
    return char in string.punctuation or unicodedata.category(char).startswith("P")


class Normalization(ScorerOptions):
    case_sensitive: bool = Field(default=False, description="Compare letters' case too.")
    whitespace: Literal["keep", "strip", "collapse"] = Field(
        default="strip",
        description="strip: ignore leading/trailing spaces; collapse: also any run of spaces "
        "is one; keep: compare spaces as they are.",
    )
    punctuation: bool = Field(default=False, description="Remove punctuation before comparing.")
    articles: bool = Field(default=False, description="Remove 'a', 'an' and 'the'.")

    def normalize(self, value: Any) -> str:
        text = value if isinstance(value, str) else str(value)
        if not self.case_sensitive:
            text = text.casefold()
        if self.punctuation:
            text = "".join(c for c in text if not _is_punctuation(c))
        if self.articles:
            text = ARTICLES.sub(" ", text)
        if self.whitespace == "collapse" or (self.articles and self.whitespace == "strip"):
            text = " ".join(text.split())
        elif self.whitespace == "strip":
            text = text.strip()
        return text


def _same(prediction: Any, reference: Any, options: Normalization) -> bool:
    if isinstance(prediction, str) or isinstance(reference, str):
        return options.normalize(prediction) == options.normalize(reference)
    return bool(prediction == reference)


class ExactMatch(Scorer[Normalization]):
    """1 when the prediction equals a reference after normalisation, else 0."""

    binary = True
    description = "1 when the prediction equals the reference (after normalisation), else 0"

    def score(self, prediction: Any, reference: Any) -> float:
        return float(any(_same(prediction, r, self.options) for r in references_of(reference)))


class Contains(Scorer[Normalization]):
    """1 when a reference appears inside the prediction after normalisation, else 0."""

    binary = True
    description = "1 when the reference appears in the prediction (after normalisation), else 0"

    def score(self, prediction: Any, reference: Any) -> float:
        text = self.options.normalize(prediction)
        return float(any(self.options.normalize(r) in text for r in references_of(reference)))


class RegexOptions(ScorerOptions):
    pattern: str | None = Field(
        default=None,
        description="A Python regular expression the prediction must match; default: each "
        "sample's reference is its pattern.",
    )
    match: Literal["search", "fullmatch"] = Field(
        default="search", description="search: anywhere in the prediction; fullmatch: all of it."
    )
    ignore_case: bool = Field(default=False)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            regex_of(value)
        return value


class Regex(Scorer[RegexOptions]):
    """1 when the prediction matches the pattern (or the sample's reference as a pattern)."""

    binary = True
    description = "1 when the prediction matches a regular expression, else 0"

    def score(self, prediction: Any, reference: Any) -> float:
        import regex

        source = self.options.pattern if self.options.pattern is not None else reference
        if not isinstance(source, str):
            raise ScoreProblem(f"the reference is not a pattern (found {type(source).__name__})")
        try:
            pattern = user_pattern(source, self.options.ignore_case)
        except regex.error as exc:
            raise ScoreProblem(f"the reference is not a regular expression: {exc}") from None
        text = str(prediction)[:MAX_REGEX_CHARS]
        return float(stopped(pattern, self.options.match, text) is not None)


def squad_normalize(text: str) -> str:
    """The SQuAD evaluation script's ``normalize_answer``: lower case, no punctuation, no
    articles, single spaces."""
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    return " ".join(ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD's F1 over the normalised tokens (an empty answer on either side: 1 when both are)."""
    predicted, expected = squad_normalize(prediction).split(), squad_normalize(reference).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


class TokenF1(Scorer):
    """SQuAD-style token F1 between 0 and 1, the best over the sample's references."""

    Options = ScorerOptions
    description = "SQuAD token F1 (0-1) against the best reference"

    def score(self, prediction: Any, reference: Any) -> float:
        return max(token_f1(str(prediction), str(r)) for r in references_of(reference))
