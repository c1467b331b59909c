"""Make any result JSON-safe: NaN/inf, numpy scalars, tuples, DataFrames, datetimes, sets."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any


def to_jsonable(value: Any) -> Any:
    """Recursively convert ``value`` into plain JSON types; non-finite floats become None."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [to_jsonable(v) for v in items]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        return to_jsonable(model_dump(mode="json"))
    to_dict = getattr(value, "to_dict", None)
    module = type(value).__module__
    if module.startswith("pandas"):
        if hasattr(value, "to_dict") and hasattr(value, "columns"):
            return [to_jsonable(r) for r in value.to_dict(orient="records")]
        if callable(to_dict):
            return to_jsonable(to_dict())
    if module.startswith("numpy") and hasattr(value, "tolist"):
        return to_jsonable(value.tolist())
    if hasattr(value, "item") and callable(value.item):
        try:
            return to_jsonable(value.item())
        except (TypeError, ValueError):
            pass
    return repr(value)


class DuplicateJsonKey(ValueError):
    """A JSON object wrote one key twice; ``args[0]`` is the key."""


def duplicate_json_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` object hook that refuses duplicate keys instead of keeping the last: every
    record we read back (experiment files, run records, telemetry, few-shot files) uses it."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateJsonKey(key)
        result[key] = value
    return result
