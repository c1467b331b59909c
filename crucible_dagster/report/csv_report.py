"""The CSV report: the tidy comparison table, one row per comparison."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crucible_dagster.report.model import Plot, comparison_table
from crucible_dagster.runtime.context import Context

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralize(value: Any) -> Any:
    """OWASP's CSV-injection defence: a text cell that a spreadsheet would run as a formula
    (``=``, ``+``, ``-``, ``@``, tab, CR first) gets a leading ``'``; numbers are left alone."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    try:
        float(value)
    except ValueError:
        return "'" + value
    return value


def safe_csv(table: Any) -> str:
    """A DataFrame as CSV with every text cell and header neutralized."""
    table = table.copy()
    for column in table.columns:
        if table[column].dtype == object:
            table[column] = table[column].map(neutralize)
    table.columns = [neutralize(str(c)) for c in table.columns]
    return str(table.to_csv(index=False))


def render_csv(ctx: Context, plots: Mapping[str, Plot] | None = None) -> str:
    return safe_csv(comparison_table(ctx))
