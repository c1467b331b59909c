"""The CSV report: the tidy comparison table, one row per comparison.

Every CSV the package writes (this report, the sweep's table) goes through :func:`safe_csv`,
the one place where cells a spreadsheet would run as formulas are neutralized.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping
from typing import Any

from crucible_dagster.reports.model import Plot, comparison_table
from crucible_dagster.runtime.context import Context

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# a number as a spreadsheet reads one; Python's float() also takes "\t1", "-1_0", "-inf", "nan"
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def neutralize(value: Any) -> Any:
    """OWASP's CSV-injection defence: a cell that a spreadsheet would run as a formula
    (``=``, ``+``, ``-``, ``@``, tab, CR first, and not a number) gets a leading ``'``.

    Numbers, booleans and missing values are left as they are; any other object is judged by
    the text the CSV writer would print for it (its ``str``)."""
    if value is None or isinstance(value, numbers.Number):
        return value
    text = value if isinstance(value, str) else str(value)
    if not text.startswith(_FORMULA_START) or _NUMBER.fullmatch(text):
        return value
    return "'" + text


def _is_plain_number(series: Any) -> bool:
    """Columns whose every printed cell is a number, a boolean or a date (never a formula).
    Timedeltas print as ``-1 days +...``, so they are not among them."""
    import pandas as pd
    from pandas.api import types

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype) or types.is_timedelta64_dtype(dtype):
        return False
    return bool(
        types.is_bool_dtype(dtype)
        or types.is_numeric_dtype(dtype)
        or types.is_datetime64_any_dtype(dtype)
    )


def _neutralize_labels(labels: Any) -> Any:
    """Column names or index labels, flat or multi-level, each neutralized."""
    import pandas as pd

    if isinstance(labels, pd.MultiIndex):
        return pd.MultiIndex.from_tuples(
            [tuple(neutralize(v) for v in t) for t in labels],
            names=[neutralize(n) for n in labels.names],
        )
    if not _is_plain_number(labels):
        return pd.Index([neutralize(v) for v in labels], dtype=object, name=neutralize(labels.name))
    return labels.rename(neutralize(labels.name))


def safe_csv(table: Any, *, index: bool = False) -> str:
    """A DataFrame as CSV with every cell, header and index label neutralized, whatever the
    column's dtype (object, pandas 3's ``str``, ``string``, categorical, timedelta...)."""
    table = table.copy()
    for position in range(table.shape[1]):
        column = table.iloc[:, position]
        if not _is_plain_number(column):
            table.isetitem(position, column.astype(object).map(neutralize))
    table.columns = _neutralize_labels(table.columns)
    if index:
        table.index = _neutralize_labels(table.index)
    # CRLF (RFC 4180) as the line end: the csv module quotes a cell holding any character of
    # the line end, so a bare CR inside a cell can no longer start a row of its own
    return str(table.to_csv(index=index, lineterminator="\r\n"))


def render_csv(ctx: Context, plots: Mapping[str, Plot] | None = None) -> str:
    return safe_csv(comparison_table(ctx))
