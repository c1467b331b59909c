"""Per-sample scores a trial carries, and the paired design a sweep builds from them.

When every configuration of a sweep scores the same samples, comparing per-seed means throws
the pairing away: two prompts that differ on 6 of 30 questions look alike. A trial whose
pipeline wrote a per-sample table (``assigns["predictions"]``) carries one column of it (the
sweep's ``per_sample`` column, ``score`` by default for the score stage's metric) as plain
JSON lists, so the Dagster ops and Celery steps pass it like the rest of the outcome. The
sweep's comparison then blocks by (seed, variant, sample): McNemar or Cochran's Q for 0/1
scores, Wilcoxon or Friedman for continuous ones (``bench.compare_groups`` chooses).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crucible_dagster.common.jsonsafe import to_jsonable

if TYPE_CHECKING:
    from crucible_dagster.experiment.ir import SweepConfig

#: the score stage's metric and column: a sweep on ``score...`` pairs on ``score`` by default
SCORE_COLUMN = "score"
#: a trial carries at most this many per-sample rows (beyond it, the per-seed means are used)
ROW_LIMIT = 1_000_000
TABLE_FILE = "predictions.parquet"

BlockKey = tuple[Any, str, Any]  # (seed, variant, sample_id)


def score_column(sweep: SweepConfig | None) -> str | None:
    """The per-sample column a sweep pairs on: ``sweep.per_sample``, else ``score`` when the
    sweep's metric is the score stage's (``score...``); None turns pairing off."""
    if sweep is None or sweep.per_sample is False:
        return None
    if isinstance(sweep.per_sample, str):
        return sweep.per_sample
    if sweep.metric == SCORE_COLUMN or sweep.metric.startswith(SCORE_COLUMN + "."):
        return SCORE_COLUMN
    return None


def _problem(column: str, text: str) -> dict[str, Any]:
    return {"column": column, "problem": text}


def _sample_id(value: Any) -> Any:
    """A sample id as JSON keeps it (text or integer), or raises TypeError naming its type."""
    plain = to_jsonable(value)
    if isinstance(plain, str) or (isinstance(plain, int) and not isinstance(plain, bool)):
        return plain
    raise TypeError(f"a sample id must be text or an integer, found {type(value).__name__}")


def _score(value: Any) -> float | None:
    """A score as a float (a bool is 0/1); None for a missing, NaN or infinite one; TypeError
    for text, which is no score at all."""
    plain = to_jsonable(value)
    if plain is None:
        return None
    if isinstance(plain, bool):
        return float(plain)
    if isinstance(plain, int | float):
        return float(plain) if math.isfinite(plain) else None
    raise TypeError(f"a score must be a number, found {type(value).__name__} {str(value)[:40]!r}")


def trial_scores(table: Any, column: str) -> dict[str, Any]:
    """One column of a per-sample table as ``{column, variant, sample_id, value}`` lists, or
    ``{column, problem}`` saying why it cannot be carried."""
    import pandas as pd

    if not isinstance(table, pd.DataFrame):
        return _problem(column, "the pipeline left no per-sample table (assigns['predictions'])")
    missing = [c for c in ("sample_id", column) if c not in table.columns]
    if missing:
        found = ", ".join(map(str, table.columns))
        return _problem(column, f"the per-sample table has no column {missing[0]!r} ({found})")
    if len(table) > ROW_LIMIT:
        return _problem(column, f"{len(table)} per-sample rows, more than {ROW_LIMIT} carried")
    variants = table["variant"] if "variant" in table.columns else [""] * len(table)
    ids, values = [], []
    for row, (sample, value) in enumerate(zip(table["sample_id"], table[column], strict=True)):
        try:
            ids.append(_sample_id(sample))
            values.append(_score(value))
        except TypeError as exc:
            return _problem(column, f"row {row}: {exc}")
    return {
        "column": column,
        "variant": [str(v) for v in variants],
        "sample_id": ids,
        "value": values,
    }


def read_trial_scores(run_dir: str | Path, column: str) -> dict[str, Any]:
    """The column from a trial's ``predictions.parquet`` (a trial read back from disk)."""
    import pandas as pd

    path = Path(run_dir) / TABLE_FILE
    if not path.is_file():
        return _problem(column, f"{path}: no per-sample table")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises its own types for a damaged file
        return _problem(column, f"{path}: unreadable ({type(exc).__name__}: {str(exc)[:200]})")
    return trial_scores(frame, column)


def checked_scores(data: Any, column: str) -> tuple[list[BlockKey], list[float | None]] | str:
    """The rows of carried scores as (seed-less) keys and values, or the problem as text: the
    record crossed a process boundary (JSON) and is checked like any record read back."""
    if not isinstance(data, Mapping):
        return f"expected a mapping of per-sample scores, found {type(data).__name__}"
    if "problem" in data:
        return str(data["problem"])[:300]
    if data.get("column") != column:
        return f"scores of column {data.get('column')!r}, expected {column!r}"
    found = [data.get(k) for k in ("variant", "sample_id", "value")]
    lists = [v for v in found if isinstance(v, list)]
    if len(lists) != len(found) or len({len(v) for v in lists}) != 1:
        return "expected lists variant, sample_id and value of one length"
    keys: list[BlockKey] = []
    values: list[float | None] = []
    for variant, sample, value in zip(*lists, strict=True):
        try:
            keys.append((None, str(variant), _sample_id(sample)))
            values.append(_score(value))
        except TypeError as exc:
            return str(exc)
    return keys, values
