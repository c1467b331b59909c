"""The command line's own user errors: the boundary turns each into one line and exit code 1."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

_T = TypeVar("_T")


class UsageError(Exception):
    """A flag's value is wrong: one line naming the flag, exit code 1."""


class RunNotFound(ValueError):
    """A run named on the command line is neither a run directory nor a known run id."""


class Terminated(BaseException):
    """SIGTERM, raised where the process is, so the run record ends as ``interrupted``."""


def flag_value(text: str, convert: Callable[[str], _T], expected: str | None = None) -> _T:
    """``convert(text)``, or argparse's one-line refusal: "expected <expected>, got '<text>'",
    or the converter's own message where ``expected`` is None. One place so every flag's
    type refuses a value the same way, without a traceback."""
    try:
        return convert(text)
    except ValueError as exc:
        message = f"expected {expected}, got {text!r}" if expected else str(exc)
        raise argparse.ArgumentTypeError(message) from None
