"""Names that must be valid Dagster names (experiment ids, stage names)."""

from __future__ import annotations

import keyword
import re

#: names Dagster refuses for a job (dagster._core.definitions.utils.DISALLOWED_NAMES): its own
#: words and Python's keywords; an experiment id is its job's name
DAGSTER_RESERVED = frozenset(
    [
        *("context", "conf", "config", "meta", "arg_dict", "dict", "input_arg_dict"),
        *("output_arg_dict", "int", "str", "float", "bool", "input", "output", "type"),
        *keyword.kwlist,
    ]
)
NAME_PATTERN = re.compile(r"[A-Za-z0-9_]+")
#: short enough that every file and Dagster name built from a name stays valid
MAX_NAME_LENGTH = 64


def suggest_name(value: str) -> str:
    """A valid spelling close to ``value``: invalid characters become underscores."""
    cleaned = re.sub(r"_{2,}", "_", re.sub(r"[^A-Za-z0-9_]+", "_", value)).strip("_")[
        :MAX_NAME_LENGTH
    ]
    return cleaned or "experiment"


def check_name(value: str, what: str) -> str:
    if not value:
        raise ValueError(f"expected a non-empty {what}, got {value!r}")
    article = "an" if what[0] in "aeiou" else "a"
    if not NAME_PATTERN.fullmatch(value):
        raise ValueError(
            f"expected {article} {what} of letters, digits and underscores (a valid Dagster name), "
            f"got {value!r}; try {suggest_name(value)!r}"
        )
    if len(value) > MAX_NAME_LENGTH:
        raise ValueError(
            f"expected {article} {what} of at most {MAX_NAME_LENGTH} characters, "
            f"got {len(value)} characters"
        )
    if "__" in value:
        raise ValueError(
            f"expected {article} {what} without '__', got {value!r}: Dagster reserves names "
            "starting with '__', and op definitions and trial ids join names with '__', so a "
            f"'__' inside a name could make two of them collide; try {value.replace('__', '_')!r}"
        )
    return value


def check_job_name(value: str, what: str) -> str:
    """``check_name``, and not a word Dagster reserves: the name becomes a Dagster job's."""
    check_name(value, what)
    if value in DAGSTER_RESERVED:
        raise ValueError(
            f"expected {'an' if what[0] in 'aeiou' else 'a'} {what} Dagster accepts as a job "
            f"name, got {value!r} (a word Dagster or Python reserves); try {value + '_1'!r}"
        )
    return value
