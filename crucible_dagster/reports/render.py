"""Render a Context in one report format. No files, no Dagster."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from crucible_dagster.reports.csv_report import render_csv
from crucible_dagster.reports.html import render_html
from crucible_dagster.reports.json_report import render_json
from crucible_dagster.reports.markdown import render_markdown
from crucible_dagster.reports.model import EXTENSIONS, Plot
from crucible_dagster.runtime.context import Context

RENDERERS: dict[str, Callable[[Context, Mapping[str, Plot] | None], str]] = {
    "markdown": render_markdown,
    "json": render_json,
    "csv": render_csv,
    "html": render_html,
}

__all__ = ["EXTENSIONS", "RENDERERS", "Plot", "render"]


def render(ctx: Context, fmt: str, plots: Mapping[str, Plot] | None = None) -> str:
    if fmt not in RENDERERS:
        raise ValueError(
            f"unsupported report format {fmt!r}; expected one of: {', '.join(RENDERERS)}"
        )
    return RENDERERS[fmt](ctx, plots)
