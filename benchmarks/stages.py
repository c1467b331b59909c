"""Light stages for the overhead benchmarks."""

from __future__ import annotations

from typing import Any

from crucible_dagster import Context, Stage


class Increment(Stage):
    name = "increment"
    description = "Adds one to metrics['counter']"

    def run(self, ctx: Context, options: Any) -> Context:
        return ctx.put_metric("counter", int(ctx.metrics.get("counter", 0)) + 1)


class LightScore(Stage):
    """A score from the trial's parameter and seed: the lightest stage a sweep can have."""

    name = "light_score"
    legacy_schema = {
        "name": "light_score",
        "description": "score = level + seed/1000",
        "required": ["level"],
        "optional": [],
        "types": {"level": "float"},
    }

    def run(self, ctx: Context, options: Any) -> Context:
        return ctx.put_metric(
            "score", float(options["level"]) + int(ctx.params.get("seed", 0)) / 1000
        )


class CpuScore(Stage):
    """A score after ``work`` rounds of pure-Python arithmetic: a CPU-bound trial."""

    name = "cpu_score"
    legacy_schema = {
        "name": "cpu_score",
        "description": "burns CPU, then score = level",
        "required": ["level", "work"],
        "optional": [],
        "types": {"level": "float", "work": "integer"},
    }

    def run(self, ctx: Context, options: Any) -> Context:
        total = 0
        for i in range(int(options["work"])):
            total = (total + i * i) % 1_000_003
        return ctx.put_metric("score", float(options["level"]) + total * 0.0)
