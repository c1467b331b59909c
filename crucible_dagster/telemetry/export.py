"""Events as a file another tool reads: CSV, JSON lines or Parquet, one flat column per schema
field (``timestamp`` in ISO 8601 UTC). The file is created, never overwritten."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("csv", "jsonl", "parquet")


#: what a spreadsheet reads as a formula at the start of a cell (OWASP's CSV injection list)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralised(value: object) -> object:
    """Text that would start a formula, behind a quote mark (shown, never evaluated)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class ExportError(ValueError):
    """An export that cannot be written; the message names the path or the format."""


def export_events(frame: pd.DataFrame, fmt: str, path: str | Path) -> Path:
    """``frame`` written to ``path`` (a new file: an existing file or a symlink is refused)."""
    import pandas as pd

    if fmt not in FORMATS:
        raise ExportError(f"--export: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    path = Path(path)
    if os.path.lexists(path):
        raise ExportError(f"--out: {path} already exists; an export never overwrites a file")
    if not path.parent.is_dir():
        raise ExportError(f"--out: the folder {path.parent} does not exist")
    table = frame.copy()
    table["timestamp"] = table["timestamp"].map(lambda t: t.isoformat())
    if fmt == "csv":  # a spreadsheet opening it must not run what a field says
        for column in table.columns:
            if not pd.api.types.is_numeric_dtype(table[column]):
                table[column] = table[column].map(neutralised)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise ExportError(f"--out: cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        if fmt == "csv":  # every text quoted: a line break or CR inside stays in its cell
            table.to_csv(handle, index=False, quoting=csv.QUOTE_NONNUMERIC)
        elif fmt == "jsonl":
            table.to_json(handle, orient="records", lines=True)
        else:
            table.to_parquet(handle, index=False)
    return path
