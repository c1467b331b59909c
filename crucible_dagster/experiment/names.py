"""Names that must be valid Dagster names (experiment ids, stage names)."""

from __future__ import annotations

import re

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_]+$")


def suggest_name(value: str) -> str:
    """A valid spelling close to ``value``: invalid characters become underscores."""
    cleaned = re.sub(r"[^A-Za-z0-9_]+", "_", value).strip("_")
    return cleaned or "experiment"


def check_name(value: str, what: str) -> str:
    if not value:
        raise ValueError(f"expected a non-empty {what}, got {value!r}")
    if not NAME_PATTERN.match(value):
        raise ValueError(
            f"expected {'an' if what[0] in 'aeiou' else 'a'} {what} of letters, digits and "
            "underscores (a valid Dagster name), "
            f"got {value!r}; try {suggest_name(value)!r}"
        )
    return value
