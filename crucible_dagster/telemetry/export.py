"""Events as a file another tool reads: CSV, JSON lines or Parquet, one flat column per schema
field (``timestamp`` in ISO 8601 UTC). The file is created, never overwritten."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("csv", "jsonl", "parquet")


class ExportError(ValueError):
    """An export that cannot be written; the message names the path or the format."""


def export_events(frame: pd.DataFrame, fmt: str, path: str | Path) -> Path:
    """``frame`` written to ``path`` (a new file: an existing file or a symlink is refused)."""
    if fmt not in FORMATS:
        raise ExportError(f"--export: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    path = Path(path)
    if os.path.lexists(path):
        raise ExportError(f"--out: {path} already exists; an export never overwrites a file")
    if not path.parent.is_dir():
        raise ExportError(f"--out: the folder {path.parent} does not exist")
    table = frame.copy()
    table["timestamp"] = table["timestamp"].map(lambda t: t.isoformat())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise ExportError(f"--out: cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        if fmt == "csv":
            table.to_csv(handle, index=False)
        elif fmt == "jsonl":
            table.to_json(handle, orient="records", lines=True)
        else:
            table.to_parquet(handle, index=False)
    return path
