"""Resolve stage names to Stage classes: built-ins, entry points, configuration, dotted paths.

Lookup order for a reference ``ref`` (a StageDef's ``module`` or else its ``name``):
1. a dotted path ``package.module:Class`` (must resolve to a Stage subclass);
2. names registered in this registry (configuration: ``Experiment.registry`` or ``Registry({...})``);
3. the ``crucible_dagster.stages`` entry-point group (the built-ins register there too,
   so a third-party package adds stages exactly as we do).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from crucible_dagster.common.plugins import entry_point_table
from crucible_dagster.runtime.code_refs import DOTTED_PATH as DOTTED_PATH
from crucible_dagster.runtime.code_refs import CodeRefError, has_pydantic_options, resolve
from crucible_dagster.runtime.code_refs import import_object as import_object
from crucible_dagster.runtime.stage import Stage

ENTRY_POINT_GROUP = "crucible_dagster.stages"

#: every named-code problem is one error type (code_refs.CodeRefError), whichever kind it names
StageResolutionError = CodeRefError


def is_dotted_path(ref: str) -> bool:
    return ":" in ref


def load_stage_class(path: str) -> type[Stage]:
    """The Stage subclass ``path`` names, checked by the one resolver of named code."""
    obj: type[Stage] = resolve(path, "stage")
    if not has_pydantic_options(obj):
        raise StageResolutionError(
            "bad_options_model",
            path,
            f"{path!r}: Options must be a pydantic model class (subclass StageOptions), "
            f"got {getattr(obj, 'Options', None)!r}",
        )
    return obj


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
        return {**entry_point_table(ENTRY_POINT_GROUP), **self._stages}

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
