"""``json_match``: the prediction parsed as JSON and compared with the reference, field by field.

A model asked for JSON often wraps it (prose, a fenced ```json block): with ``extract`` the
first JSON object or array in the text is read (among its first 32 openings, so a hostile
prediction costs no more than 32 reads). ``fields`` are dotted paths (``answer``,
``result.city``, ``items.0``); without them the whole value is compared. ``aggregate: all`` scores 1 when
every field matches (a 0/1 score), ``fraction`` the share of fields that match. A prediction
that is not JSON, or lacks a field, does not match; a reference that is not JSON, or lacks a
field, is that sample's error (the data is wrong, not the model).
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Literal

from pydantic import Field, field_validator

from crucible_dagster.runtime.metrics import metric_at
from crucible_dagster.scorers.base import ScoreProblem, Scorer, ScorerOptions

MAX_JSON_CHARS = 1_000_000
#: the openings ('{' or '[') ``extract`` tries: each try may read to the end of the text, so a
#: prediction of 300,000 unclosed '[1,' made it read 10^11 characters (hours)
MAX_EXTRACT_TRIES = 32
_MISSING = object()


class JsonMatchOptions(ScorerOptions):
    fields: list[str] | None = Field(
        default=None,
        description="Dotted paths to compare (e.g. 'answer', 'result.city'); default: the whole value.",
    )
    aggregate: Literal["all", "fraction"] = Field(
        default="all", description="all: 1 when every field matches, else 0; fraction: the share."
    )
    extract: bool = Field(
        default=True, description="Read the first JSON object or array found in the text."
    )
    case_sensitive: bool = Field(default=True, description="For text values.")

    @field_validator("fields")
    @classmethod
    def _paths(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError(
                "expected at least one field (or leave fields out for the whole value)"
            )
        for path in value or []:
            if not path or any(not part for part in path.split(".")):
                raise ValueError(f"{path!r} is not a dotted path such as 'result.city'")
        return value


def parse_json(value: Any, extract: bool) -> Any:
    """The JSON ``value`` holds (a dict or list passes as it is); ``_MISSING`` when it holds none."""
    if not isinstance(value, str):
        return value if isinstance(value, dict | list) else _MISSING
    text = value[:MAX_JSON_CHARS]
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    if not extract:
        return _MISSING
    decoder = json.JSONDecoder()
    openings = (start for start, char in enumerate(text) if char in "{[")
    for start in itertools.islice(openings, MAX_EXTRACT_TRIES):
        try:
            return decoder.raw_decode(text, start)[0]
        except (ValueError, RecursionError):
            continue
    return _MISSING


def field_of(value: Any, path: str) -> Any:
    """The field at a dotted path (``a.0.b``: keys and list positions), read as metrics are;
    ``_MISSING`` when there is none."""
    try:
        return metric_at(value, path)
    except KeyError:
        return _MISSING


class JsonMatch(Scorer[JsonMatchOptions]):
    """The prediction's JSON fields against the reference's."""

    description = "JSON fields of the prediction equal to the reference's (all: 0/1, fraction)"

    def __init__(self, options: JsonMatchOptions):
        super().__init__(options)
        self.binary = options.aggregate == "all"  # a fraction of fields is not a 0/1 score

    def _equal(self, a: Any, b: Any) -> bool:
        if isinstance(a, str) and isinstance(b, str) and not self.options.case_sensitive:
            return a.casefold() == b.casefold()
        if isinstance(a, bool) or isinstance(b, bool):
            return a is b
        return bool(a == b)

    def _against(self, predicted: Any, reference: Any) -> float:
        expected = parse_json(reference, extract=False)
        if expected is _MISSING:
            raise ScoreProblem(f"the reference is not JSON: {str(reference)[:80]!r}")
        paths = self.options.fields or [""]
        matches = 0
        for path in paths:
            want = field_of(expected, path) if path else expected
            if want is _MISSING:
                raise ScoreProblem(f"the reference has no field {path!r}")
            got = field_of(predicted, path) if path and predicted is not _MISSING else predicted
            matches += got is not _MISSING and self._equal(got, want)
        if self.options.aggregate == "all":
            return float(matches == len(paths))
        return matches / len(paths)

    def score(self, prediction: Any, reference: Any) -> float:
        # one reference: a JSON array is a value here, not a list of references
        return self._against(parse_json(prediction, self.options.extract), reference)
