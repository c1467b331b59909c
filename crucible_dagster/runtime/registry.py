"""Resolve stage names to Stage classes: built-ins, entry points, configuration, dotted paths.

Lookup order for a reference ``ref`` (a StageDef's ``module`` or else its ``name``):
1. a dotted path ``package.module:Class`` (must resolve to a Stage subclass);
2. names registered in this registry (configuration: ``Experiment.registry`` or ``Registry({...})``);
3. the ``crucible_dagster.stages`` entry-point group (the built-ins register there too,
   so a third-party package adds stages exactly as we do).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

from crucible_dagster.runtime.stage import Stage

ENTRY_POINT_GROUP = "crucible_dagster.stages"
DOTTED_PATH = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
)


class StageResolutionError(LookupError):
    """A stage reference that does not lead to a Stage class; the message says why."""

    def __init__(self, reason: str, ref: str, message: str):
        self.reason = reason
        self.ref = ref
        super().__init__(message)


def is_dotted_path(ref: str) -> bool:
    return ":" in ref


def import_object(path: str, what: str = "object") -> Any:
    """Import ``package.module:Attr`` without running anything but the module's own import."""
    if not DOTTED_PATH.match(path):
        raise StageResolutionError(
            "invalid_path", path, f"{path!r} is not a dotted path of the form 'package.module:Name'"
        )
    module_name, attr_path = path.split(":", 1)
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as exc:
        raise StageResolutionError(
            "module_not_found", path, f"cannot find module {module_name!r} for {path!r}: {exc}"
        ) from None
    if spec is None:
        raise StageResolutionError(
            "module_not_found", path, f"cannot find module {module_name!r} for {path!r}"
        )
    try:
        module = importlib.import_module(module_name)
    except BaseException as exc:
        # The module's own import failed, or called sys.exit() or raised KeyboardInterrupt while
        # importing: a problem of this stage, never a success and never an exit of the caller.
        sys.modules.pop(module_name, None)
        raise StageResolutionError(
            "import_failed",
            path,
            f"importing {module_name!r} for {path!r} failed: {type(exc).__name__}: {exc}",
        ) from None
    obj: Any = module
    for part in attr_path.split("."):
        if part.startswith("__"):
            raise StageResolutionError("invalid_path", path, f"{path!r} names a private attribute")
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise StageResolutionError(
                "attribute_not_found", path, f"module {module_name!r} has no {what} {attr_path!r}"
            ) from None
    return obj


def load_stage_class(path: str) -> type[Stage]:
    obj = import_object(path, "stage class")
    if not (isinstance(obj, type) and issubclass(obj, Stage)):
        kind = "class" if isinstance(obj, type) else type(obj).__name__
        raise StageResolutionError(
            "not_a_stage",
            path,
            f"{path!r} is a {kind}, not a crucible_dagster Stage subclass; it was not called",
        )
    options = getattr(obj, "Options", None)
    if obj.legacy_schema is None and not (
        isinstance(options, type) and issubclass(options, BaseModel)
    ):
        raise StageResolutionError(
            "bad_options_model",
            path,
            f"{path!r}: Options must be a pydantic model class (subclass StageOptions), "
            f"got {options!r}",
        )
    return obj


@cache
def _entry_point_stages() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


class Registry:
    """Stage names -> classes. ``Registry.default()`` holds the built-ins and entry points."""

    def __init__(
        self,
        stages: Mapping[str, type[Stage] | str] | None = None,
        *,
        include_installed: bool = True,
    ):
        self._stages: dict[str, type[Stage] | str] = dict(stages or {})
        self.include_installed = include_installed

    @classmethod
    def default(cls) -> Registry:
        return cls()

    def with_stages(self, stages: Mapping[str, type[Stage] | str]) -> Registry:
        """A new registry with ``stages`` added on top (experiment-level configuration)."""
        if not stages:
            return self
        return Registry({**self._stages, **stages}, include_installed=self.include_installed)

    def register(self, name: str, stage: type[Stage] | str) -> None:
        self._stages[name] = stage

    def _table(self) -> dict[str, type[Stage] | str]:
        if not self.include_installed:
            return dict(self._stages)
        return {**_entry_point_stages(), **self._stages}

    def names(self) -> list[str]:
        return sorted(self._table())

    def resolve(self, ref: str) -> type[Stage]:
        if is_dotted_path(ref):
            return load_stage_class(ref)
        table = self._table()
        if not table:
            raise StageResolutionError("no_stage_registry", ref, "no stage registry configured")
        if ref not in table:
            import difflib

            close = difflib.get_close_matches(ref, list(table), n=1)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else f"; registered: {', '.join(sorted(table))}"
            )
            raise StageResolutionError(
                "unknown_stage",
                ref,
                f"stage {ref!r} is not registered{hint} (or use 'module: package.module:Class')",
            )
        target = table[ref]
        return load_stage_class(target) if isinstance(target, str) else target

    def describe_all(self) -> list[dict[str, Any]]:
        rows = []
        for name in self.names():
            cls = self.resolve(name)
            rows.append({"name": name, "module": cls.qualified_name(), "schema": cls.describe()})
        return rows


def registry_for(experiment: Any, base: Registry | None = None) -> Registry:
    """The registry an experiment runs with: ``base`` plus its own ``registry`` entries."""
    base = base or Registry.default()
    extra = getattr(experiment, "registry", None) or {}
    return base.with_stages(extra)


_current: ContextVar[Registry | None] = ContextVar("crucible_current_registry", default=None)


def current_registry() -> Registry:
    """The registry of the stage invocation in progress (the ``validate`` stage checks against it)."""
    return _current.get() or Registry.default()


@contextmanager
def using_registry(registry: Registry) -> Iterator[None]:
    token = _current.set(registry)
    try:
        yield
    finally:
        _current.reset(token)
