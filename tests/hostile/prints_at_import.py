"""Prints at import and when run: neither may corrupt ``crucible run --json``."""

from typing import Any

from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.stage import Stage

print("hello from an imported module")


class Chatty(Stage):
    name = "chatty"

    def run(self, ctx: Context, options: Any) -> Context:
        print("chatty stage output")
        return ctx.put_metric("chatty", 1)
