"""A dataset provider and a stage for the dataset tests (importable by dotted path)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from crucible_dagster import Context, Stage
from crucible_dagster.datasets import LoadedTable, Provider, ProviderOptions


class CountingOptions(ProviderOptions):
    rows: int = Field(default=3, ge=1, le=1000)


class CountingProvider(Provider):
    """A provider of ``rows`` rows (x = 0..rows-1), as a third-party package would write one."""

    name = "counting"
    Options = CountingOptions

    def load(self, ref: Any, options: CountingOptions) -> LoadedTable:
        import pyarrow as pa

        table = pa.table(
            {
                "x": list(range(options.rows)),
                "label": ["a", "b"] * (options.rows // 2) + ["a"] * (options.rows % 2),
            }
        )
        return LoadedTable(table, f"counting({options.rows})", None, options.target)

    def columns(self, ref: Any, options: CountingOptions) -> list[str] | None:
        return ["x", "label"]


class NotAProvider:
    """Has no load method."""

    Options = ProviderOptions


class SeenExamples(Stage):
    """Records what the first stage found in ctx.assigns."""

    name = "seen_examples"

    def run(self, ctx: Context, options: Any) -> Context:
        examples = ctx.assigns.get("examples")
        seen: dict[str, Any] = {"has_examples": examples is not None}
        if examples is not None:
            seen.update(
                rows=len(examples),
                columns=[str(c) for c in examples.columns],
                ids=[str(i) for i in examples.index],
                index_is_unique=bool(examples.index.is_unique),
            )
        seen["has_features"] = ctx.assigns.get("features") is not None
        return ctx.put_metric("seen", seen)
