"""Package exports that load on first use (PEP 562).

``crucible_dagster.bench`` must not pull in scipy for a run that reads one of its small
modules, and ``crucible_dagster.dagster_plugin`` must not pull in Dagster for the Celery
workers' tools that live beneath it: each package names its exports and where they are
defined, and a name's module is imported the first time the name is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    namespace: dict[str, Any], exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The package's ``__getattr__`` and ``__dir__``: ``exports`` maps each exported name to
    the submodule (relative to the package) that defines it. ``namespace`` is the package's
    ``globals()``: a name once loaded is stored there, so later lookups are plain."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        """``dir`` (and Dagster's component scan, which uses it) lists the lazy names too."""
        return sorted({*namespace, *exports})

    return __getattr__, __dir__
