"""The command line's own user errors: the boundary turns each into one line and exit code 1."""

from __future__ import annotations


class UsageError(Exception):
    """A flag's value is wrong: one line naming the flag, exit code 1."""


class RunNotFound(ValueError):
    """A run named on the command line is neither a run directory nor a known run id."""


class Terminated(BaseException):
    """SIGTERM, raised where the process is, so the run record ends as ``interrupted``."""
