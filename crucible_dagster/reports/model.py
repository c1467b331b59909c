"""What every report format shows, in one place: the report's data, the comparison table, plots.

The format modules (markdown, html, json, csv) render this model; none of them imports another.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crucible_dagster.common.jsonsafe import to_jsonable
from crucible_dagster.experiment.ir import REPORT_EXTENSIONS
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.metrics import numeric_metrics

EXTENSIONS = REPORT_EXTENSIONS


@dataclass(frozen=True)
class Plot:
    file: str  #: file name beside the reports
    svg: str


_SVG_PROLOG = re.compile(
    r"<\?xml[^>]*\?>|<!DOCTYPE[^>]*>|<!--.*?-->|<metadata>.*?</metadata>", re.S
)


def svg_data_uri(svg: str) -> str:
    """An SVG plot as a ``data:`` URI an ``<img>`` shows wherever the page is (a browser draws no
    script from an image). Its XML prolog, comments, metadata block and the whitespace between
    elements go first (about a tenth of matplotlib's output); base64 has no character that
    ends a markdown link."""
    compact = re.sub(r"\s+", " ", re.sub(r">\s+<", "><", _SVG_PROLOG.sub("", svg))).strip()
    return "data:image/svg+xml;base64," + base64.b64encode(compact.encode("utf-8")).decode("ascii")


def report_data(ctx: Context) -> dict[str, Any]:
    experiment = ctx.experiment
    return to_jsonable(
        {
            "experiment_id": ctx.experiment_id,
            "run_id": ctx.run_id,
            "description": experiment.description if experiment else None,
            "seed": experiment.seed if experiment else None,
            "parameters": dict(ctx.params),
            "completed_stages": ctx.completed_stages(),
            "metrics": dict(ctx.metrics),
            "outputs": [
                o for o in ctx.outputs if not (isinstance(o, Mapping) and o.get("kind") == "report")
            ],
            "artifacts": dict(ctx.artifacts),
            "quality_targets": ctx.metrics.get("quality_targets"),
            "trace": ctx.trace.statistics() if ctx.trace else None,
            "budget": budget_line(ctx.metrics.get("budget")),
        }
    )


def budget_line(budget: Any) -> str | None:
    """The run's budget in one line (None without one): what was spent of each limit, and
    whether it ran out (the run then ends ``budget_exhausted``, its answers kept)."""
    if not isinstance(budget, Mapping):
        return None
    limits: Mapping[str, Any] = budget.get("limits") or {}
    spent: Mapping[str, Any] = budget.get("spent") or {}
    parts = []
    for name, label in (("requests", "requests"), ("tokens", "tokens"), ("cost", "cost")):
        used = spent.get(name)
        limit = limits.get(f"max_{name}")
        if used is None and limit is None:
            continue
        shown = f"{used:.6g}" if isinstance(used, float) else str(used)
        parts.append(f"{label} {shown}" + (f" of {limit:g}" if limit is not None else ""))
    state = (
        f"exhausted ({budget.get('reason')}): {spent.get('refused', 0)} request(s) not sent"
        if budget.get("exhausted") is True
        else "within budget"
    )
    return f"{state}; spent: {', '.join(parts) or 'nothing'}"


def comparison_table(ctx: Context) -> Any:
    """The tidy comparison table (one row per comparison), or the numeric metrics when there is none."""
    import pandas as pd

    table = ctx.assigns.get("bench_comparisons")
    if isinstance(table, pd.DataFrame) and not table.empty:
        return table
    numbers = numeric_metrics(ctx.metrics)
    return pd.DataFrame({"metric": list(numbers), "value": list(numbers.values())})


def format_number(value: Any, digits: int = 4) -> str:
    """A number as a report shows it (4 significant digits); ``n/a`` for a missing value.

    Strict JSON stores NaN as null, so NaN and None both mean "not defined" here."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def verdict_label(verdict: Mapping[str, Any]) -> tuple[str, str]:
    """A quality-target verdict's label and its CSS class."""
    if verdict.get("passed"):
        return "pass", "pass"
    if verdict.get("severity") == "error":
        return "FAIL", "fail"
    return "miss (warn)", "warn"
