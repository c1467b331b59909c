"""The ``crucible`` command: validate, run, stages, schema, diff, plan, runs, accept.

One module per command group; ``boundary`` holds the one error boundary and ``main``, the
entry point (``crucible = "crucible_dagster.cli:main"``). Runs without Dagster.
"""

from crucible_dagster.cli.boundary import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USER,
    main,
)
from crucible_dagster.cli.parser import build_parser
from crucible_dagster.cli.terminal import terminal_safe

__all__ = [
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "EXIT_USER",
    "build_parser",
    "main",
    "terminal_safe",
]
