"""The installed packages' entry points, read once per process.

Each registry (stages, scorers, dataset providers, model backends, run sources) names its own
group. Reading one group scans every installed distribution's metadata (5 to 8 ms here); the
registries each kept a cached copy of the same function to do it for their group. One scan,
one function, serves them all.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points


@cache
def _all() -> dict[str, tuple[EntryPoint, ...]]:
    found = entry_points()
    if isinstance(found, dict):  # Python 3.10 and 3.11: a (deprecated) dict of the groups
        return {group: tuple(entries) for group, entries in dict.items(found)}
    groups: dict[str, list[EntryPoint]] = {}
    for entry in found:
        groups.setdefault(entry.group, []).append(entry)
    return {group: tuple(entries) for group, entries in groups.items()}


def entry_points_of(group: str) -> tuple[EntryPoint, ...]:
    """The entry points of ``group`` across the installed distributions."""
    return _all().get(group, ())


def entry_point_table(group: str) -> dict[str, str]:
    """``group``'s entry points as name -> ``module:attribute``."""
    return {entry.name: entry.value for entry in entry_points_of(group)}
