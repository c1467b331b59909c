"""Stages ported from the original's examples (core pipeline, bench and trace demos)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.stage import Stage, StageOptions

DEFAULT_EXAMPLES = [
    {"input": "What is 2 + 2?", "output": "4"},
    {"input": "Capital of France?", "output": "Paris"},
    {"input": "Colour of the sky?", "output": "Blue"},
]


class SeedExamplesOptions(StageOptions):
    examples: list[dict[str, Any]] = Field(
        default_factory=lambda: [dict(e) for e in DEFAULT_EXAMPLES]
    )


class SeedExamples(Stage):
    """Puts a small list of examples into assigns['examples'] for data_checks and guardrails."""

    name = "seed_examples"
    Options = SeedExamplesOptions

    def run(self, ctx: Context, options: SeedExamplesOptions) -> Context:
        return ctx.assign("examples", options.examples).put_metric(
            "examples_loaded", len(options.examples)
        )


class SeedMetricsOptions(StageOptions):
    metrics: dict[str, Any] = Field(
        default_factory=dict, description="Merged into the context's metrics."
    )


class SeedMetrics(Stage):
    """Merges fixed metrics into the context (the bench demo's baseline and treatment scores)."""

    name = "seed_metrics"
    Options = SeedMetricsOptions

    def run(self, ctx: Context, options: SeedMetricsOptions) -> Context:
        return ctx.merge_metrics(options.metrics)


class DecisionOptions(StageOptions):
    choice: str = "safe_path"
    alternatives: list[str] = Field(default_factory=lambda: ["fast_path", "safe_path"])
    confidence: float = Field(default=0.72, ge=0, le=1)


class DecisionStage(Stage):
    """Records a decision in the trace (the original's trace demo)."""

    name = "decision_stage"
    Options = DecisionOptions

    def run(self, ctx: Context, options: DecisionOptions) -> Context:
        ctx = ctx.emit_decision(
            "Select fallback strategy",
            f"Chose {options.choice} after weighing {', '.join(options.alternatives)}",
            alternatives=options.alternatives,
            confidence=options.confidence,
        )
        return ctx.put_metric(
            "decision", {"choice": options.choice, "confidence": options.confidence}
        )
