"""The CSV report: the tidy comparison table, one row per comparison."""

from __future__ import annotations

from collections.abc import Mapping

from crucible_dagster.report.model import Plot, comparison_table
from crucible_dagster.runtime.context import Context


def render_csv(ctx: Context, plots: Mapping[str, Plot] | None = None) -> str:
    return str(comparison_table(ctx).to_csv(index=False))
