"""Every cell of every CSV we write is inert in a spreadsheet, whatever the column's dtype.

A cell that starts with ``=``, ``+``, ``-``, ``@``, tab or CR and is not a number gets a
leading ``'``; numbers stay numbers. Checked on the pandas installed (whose default text dtype
is ``str`` from pandas 3 on), on object, ``string`` and categorical columns, in column names
and in the index, and through the two writers: the run's CSV report and the sweep's CSV.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import numpy as np
import pandas as pd
import pytest

from crucible_dagster.reports.csv_report import render_csv, safe_csv
from crucible_dagster.reports.sweep import sweep_csv
from crucible_dagster.runtime.context import Context

FORMULAS = [
    '=HYPERLINK("http://x","y")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(A1)",
    "\t=1+1",
    "\r=1+1",
    "\t1",  # Python's float() reads this as 1.0; a spreadsheet does not
    "-1_000",  # float() reads this too
    "-inf",
    "-",
]
NUMBERS_AS_TEXT = ["-1.5", "+3", "-2e-3", "-.5", "7"]
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text, newline="")) for cell in row]


def assert_inert(text: str) -> None:
    """No cell a spreadsheet would run: formula-first cells are quoted unless they are numbers."""
    for cell in cells(text):
        if cell.startswith(("=", "+", "-", "@", "\t", "\r")) and cell != "-inf":
            # "-inf" is how a float column prints minus infinity: a number, not user text
            assert NUMBER.fullmatch(cell), f"live formula cell {cell!r} in\n{text}"


def column(values: list[str], dtype: str | None) -> Any:
    if dtype == "category":
        return pd.Categorical(values)
    return pd.Series(values, dtype=dtype)


DTYPES = [None, object, "string", "category"]  # None: what the installed pandas picks


@pytest.mark.parametrize("dtype", DTYPES, ids=["default", "object", "string", "category"])
def test_formula_cells_are_quoted_and_numbers_kept_on_every_text_dtype(dtype: Any) -> None:
    values = FORMULAS + NUMBERS_AS_TEXT
    numbers = [-1.5, -2.0, 0.0, -np.inf, *range(len(values) - 4)]
    table = pd.DataFrame({"text": column(values, dtype), "x": numbers})
    written = safe_csv(table)
    assert_inert(written)
    rows = list(csv.reader(io.StringIO(written, newline="")))[1:]
    # nothing lost: only the quote added, and numbers (as text or not) left as they were
    assert [r[0] for r in rows] == ["'" + f for f in FORMULAS] + NUMBERS_AS_TEXT
    assert [r[1] for r in rows][:4] == ["-1.5", "-2.0", "0.0", "-inf"]


def test_the_installed_pandas_default_text_dtype_is_covered() -> None:
    table = pd.DataFrame({"metric": ["=1+1"]})
    assert safe_csv(table).splitlines()[1] == "'=1+1", (pd.__version__, table.dtypes.iloc[0])


def test_column_names_and_the_index_are_quoted() -> None:
    table = pd.DataFrame({"=cmd": [1], "-x": [2], "-3": [3], "ok": [4]})
    table.index = pd.Index(["@row"], name="+name")
    header, row = list(csv.reader(io.StringIO(safe_csv(table, index=True), newline="")))
    assert header == ["'+name", "'=cmd", "'-x", "-3", "ok"]
    assert row == ["'@row", "1", "2", "3", "4"]


def test_objects_are_judged_by_the_text_written_for_them() -> None:
    class Shows:
        def __str__(self) -> str:
            return "=HYPERLINK(1)"

    table = pd.DataFrame(
        {"obj": [Shows(), np.int64(-3)], "delta": pd.to_timedelta([-1, 1], unit="h")}
    )
    written = safe_csv(table)
    assert_inert(written)
    assert cells(written)[2:4] == ["'=HYPERLINK(1)", "'-1 days +23:00:00"]
    assert cells(written)[4] == "-3"


def test_the_run_report_csv_quotes_a_hostile_metric_name() -> None:
    ctx = Context(experiment_id="e", run_id="r", metrics={"=HYPERLINK(1)": 1.0, "-a-b": -2.0})
    written = render_csv(ctx)
    assert_inert(written)
    assert "'=HYPERLINK(1)" in cells(written) and "'-a-b" in cells(written)
    assert "-2.0" in cells(written)


def test_the_sweep_csv_quotes_configuration_names_and_parameters() -> None:
    comparison = {
        "configurations": {
            "=cmd|' /C calc'!A0": {"params": {"a": 1}, "seeds": 3, "n": 3, "mean": -0.5},
            "@x": {"params": None, "seeds": 3, "n": 3, "mean": 0.5},
        }
    }
    written = sweep_csv(comparison)
    assert_inert(written)
    assert "'=cmd|' /C calc'!A0" in cells(written) and "'@x" in cells(written)
    assert "-0.5" in cells(written)


@pytest.mark.parametrize("dtype", DTYPES, ids=["default", "object", "string", "category"])
def test_a_carriage_return_inside_a_cell_cannot_start_a_row(dtype: Any) -> None:
    """The csv module quotes only the line end's characters: with a bare LF line end, a CR
    inside a cell was written raw and a spreadsheet began a new row, formula first, there."""
    smuggled = ["note\r=HYPERLINK(1)", "note\n@SUM(A1)"]
    table = pd.DataFrame({"text": column(smuggled, dtype)})
    rows = list(csv.reader(io.StringIO(safe_csv(table), newline="")))
    assert rows == [["text"], [smuggled[0]], [smuggled[1]]]
