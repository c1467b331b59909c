"""The ``crucible`` argument parser: each command group registers its own subcommands."""

from __future__ import annotations

import argparse
from typing import NoReturn

from crucible_dagster.cli.diff import register as register_diff
from crucible_dagster.cli.model import register as register_model
from crucible_dagster.cli.plan import register as register_plan
from crucible_dagster.cli.run import register as register_run
from crucible_dagster.cli.runs import register as register_runs
from crucible_dagster.cli.stages import register as register_stages
from crucible_dagster.cli.stages import register_schema
from crucible_dagster.cli.telemetry import register as register_telemetry
from crucible_dagster.cli.terminal import terminal_safe
from crucible_dagster.cli.validate import register as register_validate


class _Parser(argparse.ArgumentParser):
    """argparse, with its error on one line whatever the arguments hold (exit 2 as always)."""

    def error(self, message: str) -> NoReturn:
        super().error(terminal_safe(message))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="crucible", description="Run and check Crucible experiments without Dagster."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument(
        "--debug", action="store_true", help="print the traceback of an error (exit codes: README)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for register in (
        register_validate,
        register_run,
        register_stages,
        register_diff,
        register_plan,
        register_schema,  # the order of `crucible --help`
        register_runs,
        register_telemetry,
        register_model,
    ):
        register(sub)
    return parser
