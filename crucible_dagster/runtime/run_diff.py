"""What differs between two runs: ``crucible diff RUN_A RUN_B`` over their manifests.

Identity and timing (run ids, start/end times, durations) always differ and are left out;
everything that can change a result is compared: the experiment, seeds, parameters,
resolved stage options, package versions, git state, data fingerprints and metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crucible_dagster.common.jsonsafe import to_jsonable

SECTIONS = (
    "seed",
    "seeds",
    "parameters",
    "experiment",
    "stages",
    "package_versions",
    "git",
    "data_fingerprints",
    "metrics",
    "status",
)
IGNORED_KEYS = {"duration_ms"}
MISSING = object()


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            if key in IGNORED_KEYS:
                continue
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        for index, item in enumerate(value):  # rows of a table: compare cell by cell
            _flatten(item, f"{prefix}[{index}]", out)
    else:
        out[prefix] = value


def diff_manifests(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(path, value in a, value in b)`` for every leaf that differs, in section order."""
    changes: list[tuple[str, Any, Any]] = []
    for section in SECTIONS:
        left: dict[str, Any] = {}
        right: dict[str, Any] = {}
        _flatten(to_jsonable(a.get(section)), section, left)
        _flatten(to_jsonable(b.get(section)), section, right)
        if section == "experiment":
            # the seed is reported once, as its own section
            left.pop("experiment.seed", None)
            right.pop("experiment.seed", None)
        for key in sorted(set(left) | set(right), key=lambda k: (k not in left, k)):
            before, after = left.get(key, MISSING), right.get(key, MISSING)
            if before != after:
                changes.append((key, before, after))
    return changes


def format_change(path: str, before: Any, after: Any) -> str:
    """One line per change: values as ``repr`` and the path escaped, so a key or value read
    from a manifest never moves the cursor or starts a line on the terminal."""

    def show(value: Any) -> str:
        return "(absent)" if value is MISSING else repr(value)

    return f"{_escaped(path)}: {show(before)} -> {show(after)}"


def _escaped(text: str) -> str:
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )
