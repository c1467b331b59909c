"""Stage, adapter and checker modules that misbehave, for the hostile corpus."""

from __future__ import annotations

from typing import Any

from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.stage import Stage


class NotPydanticOptions(Stage):
    name = "not_pydantic"
    Options = dict  # type: ignore[assignment]


class RaisesSystemExit(Stage):
    name = "raises_system_exit"

    def run(self, ctx: Context, options: Any) -> Context:
        raise SystemExit(0)


class RaisesKeyboardInterrupt(Stage):
    name = "raises_keyboard_interrupt"

    def run(self, ctx: Context, options: Any) -> Context:
        raise KeyboardInterrupt


class ScanlessAdapter:
    pass


def checker_of_three(examples: Any, options: Any, extra: Any) -> list[Any]:
    return []


def printed_stage_module_marker() -> None:
    """Nothing: the module below prints when imported."""


class AssignsUnstorable(Stage):
    """Puts a value into the context that cannot cross a process (neither JSON nor a table)."""

    name = "assigns_unstorable"

    def run(self, ctx: Context, options: Any) -> Context:
        return ctx.assign("handle", object())


class RaisesKeyError(Stage):
    """A bug in a stage's own code: that stage's failure, not crucible_dagster's (exit 1)."""

    name = "raises_key_error"

    def run(self, ctx: Context, options: Any) -> Context:
        raise KeyError("missing_column")


class RaisesMultiline(Stage):
    """A failure message with an escape sequence and a line break in it."""

    name = "raises_multiline"

    def run(self, ctx: Context, options: Any) -> Context:
        raise ValueError("bad \x1b[2J value\nsecond line")
