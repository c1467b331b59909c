"""The Cost section of a sweep's report: requests, tokens and cost per configuration and in
total (``comparison["cost"]``, see ``sweeps/spend.py``), and the budget they were held to.
Configuration ids are user text: escaped in both formats."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from crucible_dagster.reports.html import html_table
from crucible_dagster.reports.markdown import md_table, md_text
from crucible_dagster.reports.model import format_number

COST_HEADERS = [
    "configuration", "trials", "requests", "cached", "prompt tokens", "completion tokens", "cost",
]  # fmt: skip
NOTE = (
    "Requests sent (samples not answered from the cache, plus retries and hedges) and their "
    "tokens as the server reported them; cost in the backends' price unit "
    "(price_per_million_input/output; 0 for a backend without prices)."
)


def cost_rows(cost: Mapping[str, Any]) -> list[list[Any]]:
    """One row per configuration and the total (plain text, unescaped)."""
    configurations = cost.get("configurations")
    rows: list[tuple[str, Any]] = (
        list(configurations.items()) if isinstance(configurations, Mapping) else []
    )
    rows.append(("total", cost.get("total")))
    return [
        [
            name,
            *[row.get(k) for k in ("trials", "requests", "cached")],
            *[row.get(k) for k in ("prompt_tokens", "completion_tokens")],
            format_number(row.get("cost"), 6),
        ]
        for name, row in rows
        if isinstance(row, Mapping)
    ]


def budget_line(cost: Mapping[str, Any]) -> str | None:
    budget = cost.get("budget")
    if not isinstance(budget, Mapping) or not budget:
        return None
    limits = ", ".join(f"{k} {v}" for k, v in budget.items())
    return f"Budget: {limits}."


def cost_markdown(cost: Any) -> list[str]:
    if not isinstance(cost, Mapping):
        return []
    lines = ["## Cost", "", md_text(NOTE), "", *md_table(COST_HEADERS, cost_rows(cost)), ""]
    budget = budget_line(cost)
    return [*lines, md_text(budget), ""] if budget else lines


def cost_html(cost: Any) -> str:
    if not isinstance(cost, Mapping):
        return ""
    budget = budget_line(cost)
    return (
        f"<h2>Cost</h2><p>{escape(NOTE)}</p>"
        + html_table(COST_HEADERS, cost_rows(cost))
        + (f"<p>{escape(budget)}</p>" if budget else "")
    )
