"""Code an experiment file may name, for the dotted-path family (tests/hostile/test_dotted_paths.py).

Everything here writes a line to the file ``$CRUCIBLE_TEST_MARKER`` when it is called or
instantiated, so a test can prove that code named as the wrong kind was never called.
"""

from __future__ import annotations

import os
from subprocess import run  # re-exported on purpose: 'named_code:run' is still subprocess.run
from typing import Any

from crucible_dagster.scorers.base import Scorer

MARKER_ENV = "CRUCIBLE_TEST_MARKER"

__all__ = ["MARKER_ENV", "WritesMarker", "run", "writes_marker"]


def _mark(what: str) -> None:
    path = os.environ.get(MARKER_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as marker:
            marker.write(what + "\n")


def writes_marker(*args: Any, **kwargs: Any) -> list[Any]:
    """A function of any arity: named where a class is expected, it must never be called."""
    _mark("writes_marker")
    return []


class WritesMarker:
    """A class with every method a class kind asks for: named where a function is expected,
    it must never be instantiated."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _mark("WritesMarker")

    def fit(self, *args: Any) -> WritesMarker:
        return self

    def predict(self, rows: Any) -> list[Any]:
        return [0 for _ in range(len(rows))]

    def scan(self, examples: Any, options: Any) -> list[Any]:
        return []


class GoodEstimator:
    """A user's estimator: the kind check must accept it."""

    def fit(self, features: Any, target: Any) -> GoodEstimator:
        return self

    def predict(self, rows: Any) -> list[int]:
        return [0 for _ in range(len(rows))]


def good_factory() -> GoodEstimator:
    return GoodEstimator()


def good_function(inputs: list[Any]) -> list[Any]:
    return list(inputs)


def good_checker(examples: list[Any], options: Any) -> list[Any]:
    return []


class GoodAdapter:
    def scan(self, examples: Any, options: Any) -> list[Any]:
        return []


class GoodScorer(Scorer):
    """A user's scorer: the kind check must accept it."""

    def score(self, prediction: Any, reference: Any) -> float:
        return float(len(str(prediction)))
