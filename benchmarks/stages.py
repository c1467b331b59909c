"""Light stages for the overhead benchmarks."""

from __future__ import annotations

from typing import Any

from crucible_dagster import Context, Stage


class Increment(Stage):
    name = "increment"
    description = "Adds one to metrics['counter']"

    def run(self, ctx: Context, options: Any) -> Context:
        return ctx.put_metric("counter", int(ctx.metrics.get("counter", 0)) + 1)
