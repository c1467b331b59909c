"""How a load of experiments says what did not load: lenient (the default, for ``dg dev``: each
problem logged once, the others load) or strict (for CI: one error listing every problem, so
``dg check defs`` and ``dagster definitions validate`` exit non-zero)."""

from __future__ import annotations

import logging
import os
import weakref
from typing import Any

from crucible_dagster.experiment.problems import Problem

#: strict loading: any experiment that does not load fails the whole code location (for CI)
STRICT_ENV = "CRUCIBLE_STRICT"
STRICT_VALUES = ("1", "true", "yes", "on")
LENIENT_VALUES = ("", "0", "false", "no", "off")
#: set by `dg check defs` and `dagster definitions validate` while they load definitions
VALIDATION_CLI_ENV = "DAGSTER_IS_DEFS_VALIDATION_CLI"

logger = logging.getLogger("crucible_dagster")


def strict_from_env() -> bool:
    """``$CRUCIBLE_STRICT``, checked: a typo must not leave a CI check silently lenient."""
    raw = os.environ.get(STRICT_ENV)
    if raw is None or raw.lower() in LENIENT_VALUES:
        return False
    if raw.lower() in STRICT_VALUES:
        return True
    raise ValueError(
        f"{STRICT_ENV}: expected {', '.join(STRICT_VALUES)} (strict) or "
        f"{', '.join(v for v in LENIENT_VALUES if v)} or empty (lenient), found {raw!r}"
    )


class ExperimentsNotLoaded(Exception):
    """Strict loading: every problem of every experiment that did not load, one line each with
    its file and line, so a CI check fails naming them all at once."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        listing = "\n".join(f"  {p}" for p in problems)
        super().__init__(
            f"crucible strict mode ({STRICT_ENV}=1 or the component's strict: true): {count} "
            f"in the experiments; nothing loads until they are fixed:\n{listing}"
        )


def report(problems: list[Problem], strict: bool) -> None:
    """Strict: raise listing every problem. Lenient: log each (once per load), and under a
    validation command one more line saying the check passes only because it is lenient."""
    if not problems:
        return
    if strict:
        raise ExperimentsNotLoaded(problems)
    for problem in problems:
        log_once(logging.ERROR, f"invalid experiment: {problem}")
    if os.environ.get(VALIDATION_CLI_ENV):
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        log_once(
            logging.ERROR,
            f"crucible: {count} above; those experiments are not loaded and the others are. "
            f"This check still passes: set {STRICT_ENV}=1 (or the component's strict: true) to "
            "fail it on them",
        )


class _LoadLog:
    """The messages logged during the current load of the code location."""

    def __init__(self) -> None:
        self.initialization: weakref.ref[Any] | None = None
        self.reconstruction: weakref.ref[Any] | None = None
        self.seen: set[str] = set()

    def is_new(self, message: str) -> bool:
        """Whether ``message`` is new in this load. Dagster loads a ``@definitions`` function
        twice when it loads a code location: once under an INITIALIZATION
        ``DefinitionsLoadContext``, then under a RECONSTRUCTION one made from it; both are one
        load here. Another INITIALIZATION context (a reload), or a RECONSTRUCTION one that
        follows no INITIALIZATION (a run's step process), starts a new load."""
        from dagster._core.definitions.definitions_load_context import (
            DefinitionsLoadContext,
            DefinitionsLoadType,
        )

        if not DefinitionsLoadContext.is_set():
            return True  # a plain import or a test: every call logs
        load = DefinitionsLoadContext.get()
        if load.load_type == DefinitionsLoadType.INITIALIZATION:
            if _get(self.initialization) is not load:
                self.initialization, self.reconstruction = weakref.ref(load), None
                self.seen = set()
        elif _get(self.reconstruction) is not load:
            if self.initialization is None or self.reconstruction is not None:
                self.initialization, self.seen = None, set()
            self.reconstruction = weakref.ref(load)
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


def _get(ref: weakref.ref[Any] | None) -> Any:
    return None if ref is None else ref()


_LOG = _LoadLog()


def log_once(level: int, message: str) -> None:
    """Log ``message`` once per load of the code location: Dagster builds a ``@definitions``
    function twice per load, which printed every problem twice (``_LoadLog.is_new``)."""
    if _LOG.is_new(message):
        logger.log(level, message)
