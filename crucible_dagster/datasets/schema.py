"""``dataset.schema``: the columns a table must have and their types, checked on load.

A type is a pyarrow type name (``string``, ``int64``, ``float64``, ``bool``, ``list<string>``
...) or ``{type: ..., nullable: true}``; a plain name refuses nulls. A column of another type is
converted by a safe cast (``"42"`` to ``int64``); the first value that does not convert without
loss is the error, located by its row (counting data rows from 1) and column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from crucible_dagster.datasets.base import DatasetError

#: friendly spellings pyarrow has no alias for
SPELLINGS = {"int": "int64", "integer": "int64", "float": "float64", "number": "float64"}


#: lists of lists of ... this deep at most (a deeper spelling is refused, not recursed into)
MAX_LIST_DEPTH = 32


def _arrow_type(text: str, where: str, depth: int = 0) -> Any:
    import pyarrow as pa

    spelled = text.strip()
    if spelled.startswith("list<") and spelled.endswith(">"):
        if depth >= MAX_LIST_DEPTH:
            raise DatasetError(
                f"expected lists nested at most {MAX_LIST_DEPTH} deep, found {text[:40]!r}...",
                reason="invalid_schema",
                where=where,
            )
        return pa.list_(_arrow_type(spelled[5:-1], where, depth + 1))
    try:
        return pa.type_for_alias(SPELLINGS.get(spelled, spelled))
    except (ValueError, KeyError):
        raise DatasetError(
            f"expected a type name (string, int64, float64, bool, list<string> ...), found {text!r}",
            reason="invalid_schema",
            where=where,
        ) from None


def parse_schema(schema: Mapping[str, Any]) -> dict[str, tuple[Any, bool]]:
    """column -> (Arrow type, nullable), each spelling checked at ``dataset.schema.<column>``."""
    parsed = {}
    for column, spec in schema.items():
        where = f"dataset.schema.{column}"
        nullable = False
        if isinstance(spec, Mapping):
            unknown = set(spec) - {"type", "nullable"}
            if unknown or not isinstance(spec.get("type"), str):
                raise DatasetError(
                    f"expected a type name or {{type: ..., nullable: true|false}}, found {dict(spec)!r}",
                    reason="invalid_schema",
                    where=where,
                )
            if not isinstance(spec.get("nullable", False), bool):
                raise DatasetError(
                    f"nullable: expected true or false, found {spec['nullable']!r}",
                    reason="invalid_schema",
                    where=where,
                )
            nullable, spec = bool(spec.get("nullable", False)), spec["type"]
        if not isinstance(spec, str):
            raise DatasetError(
                f"expected a type name, found {spec!r}", reason="invalid_schema", where=where
            )
        parsed[str(column)] = (_arrow_type(spec, where), nullable)
    return parsed


def _first_failing_row(column: Any, arrow_type: Any) -> int:
    """The first row whose value does not cast safely: bisect on slices (log n casts)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    low, high = 0, len(column)
    while high - low > 1:
        middle = (low + high) // 2
        try:
            pc.cast(column.slice(low, middle - low), arrow_type, safe=True)
            low = middle
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            high = middle
    return low


def check_schema(
    table: Any,
    schema: Mapping[str, Any],
    source: str,
    origin_of: Callable[[int], str] | None = None,
) -> Any:
    """``table`` with the declared columns cast to their types; DatasetError at the first
    missing column, null or value that does not convert, naming its row and column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for column, (arrow_type, nullable) in parse_schema(schema).items():
        if column not in table.column_names:
            raise DatasetError(
                f"dataset.schema: column {column!r} is missing; the table has "
                f"{', '.join(map(repr, table.column_names[:20]))}",
                reason="schema_mismatch",
                where=source,
            )
        values = table[column].combine_chunks()

        def fail(row: int, found: str, column: str = column, arrow_type: Any = arrow_type) -> None:
            where = origin_of(row) if origin_of is not None else source
            raise DatasetError(
                f"dataset.schema: row {row + 1}, column {column!r}: expected {arrow_type}, "
                f"found {found}",
                reason="schema_mismatch",
                where=where,
            )

        if not nullable and values.null_count:
            fail(pc.index(pc.is_null(values), True).as_py(), "null")
        if values.type == arrow_type:
            continue
        try:
            cast = pc.cast(values, arrow_type, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            row = _first_failing_row(values, arrow_type)
            fail(row, f"{values[row].as_py()!r} ({values.type})")
        table = table.set_column(table.column_names.index(column), column, cast)
    return table
