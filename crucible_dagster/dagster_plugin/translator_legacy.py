"""The translator's per-attribute methods of earlier versions, kept as deprecated aliases.

Calling one reads the ``get_*_spec`` it belongs to, so code that still calls ``job_name`` or
``report_asset_key`` sees what an overridden spec method says. A subclass that overrides one is
still honoured: the spec methods use its answer (and a DeprecationWarning names the spec
method to override instead). An override that calls ``super()`` gets the default.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import dagster as dg

    from crucible_dagster.experiment.ir import Experiment, OutputSpec, StageDef
    from crucible_dagster.runtime.stage import Stage

T = TypeVar("T")

#: deprecated method -> the spec method that replaces it
REPLACED_BY = {
    "job_name": "get_job_spec",
    "job_description": "get_job_spec",
    "job_tags": "get_job_spec",
    "node_name": "get_op_spec",
    "op_definition_name": "get_op_spec",
    "op_description": "get_op_spec",
    "op_tags": "get_op_spec",
    "step_tags": "get_op_spec",
    "report_asset_key": "get_asset_spec",
    "group_name": "get_asset_spec",
    "asset_tags": "get_asset_spec",
    "owners": "get_asset_spec",
    "code_version": "get_asset_spec",
    "dataset_deps": "get_asset_spec",
    "automation_condition": "get_asset_spec",
    "dataset_asset_key": "get_dataset_asset_spec",
    "sweep_asset_key": "get_sweep_asset_spec",
    "quality_check_asset_key": "get_asset_check_spec",
    "schedule_name": "get_schedule_spec",
    "schedule_description": "get_schedule_spec",
    "invalid_file_asset_key": "get_invalid_file_asset_spec",
    "invalid_file_asset_tags": "get_invalid_file_asset_spec",
}


class DeprecatedTranslatorMethods:
    """The aliases, and the rule that honours a subclass's override of one."""

    #: the deprecated methods this class overrides (found once, when the class is made)
    _legacy_overrides: frozenset[str] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._legacy_overrides = frozenset(
            name
            for name in REPLACED_BY
            if getattr(cls, name) is not getattr(DeprecatedTranslatorMethods, name)
        )
        for name, spec in REPLACED_BY.items():
            if name in cls._legacy_overrides and name in vars(cls):
                warnings.warn(
                    f"{cls.__qualname__}.{name} overrides a deprecated translator method; "
                    f"override {spec} instead (still honoured for now)",
                    DeprecationWarning,
                    stacklevel=2,
                )

    def _pick(self, name: str, default: Callable[[], T], *args: Any) -> T:
        """A subclass's own ``name(*args)`` when it overrides it, else ``default()``."""
        if name not in self._legacy_overrides:
            return default()
        calling: set[str] = self.__dict__.setdefault("_calling", set())
        if name in calling:  # reached from the override's super(): the default
            return default()
        calling.add(name)
        try:
            return getattr(self, name)(*args)
        finally:
            calling.discard(name)

    def _alias(self, name: str, read: Callable[[], T]) -> T:
        """A deprecated method reached from a subclass's override (through ``super()``): the
        spec methods must give the default for it, not call the override again."""
        if name not in self._legacy_overrides:
            return read()
        calling: set[str] = self.__dict__.setdefault("_calling", set())
        if name in calling:
            return read()
        calling.add(name)
        try:
            return read()
        finally:
            calling.discard(name)

    def _spec(self) -> Any:
        """The translator these aliases are mixed into (not imported here: that would be a
        cycle, translator imports this module)."""
        return self

    # jobs and ops
    def job_name(self, experiment: Experiment) -> str:
        return self._alias("job_name", lambda: self._spec().get_job_spec(experiment).name)

    def job_description(self, experiment: Experiment) -> str:
        return self._alias(
            "job_description", lambda: self._spec().get_job_spec(experiment).description
        )

    def job_tags(self, experiment: Experiment) -> dict[str, str]:
        return self._alias("job_tags", lambda: self._spec().get_job_spec(experiment).tags)

    def node_name(self, experiment: Experiment, step: str) -> str:
        return self._alias(
            "node_name", lambda: self._spec().get_op_spec(experiment, step).node_name
        )

    def op_definition_name(self, experiment: Experiment, step: str) -> str:
        return self._alias(
            "op_definition_name", lambda: self._spec().get_op_spec(experiment, step).name
        )

    def op_description(
        self, experiment: Experiment, stage: StageDef, stage_cls: type[Stage]
    ) -> str:
        return self._alias(
            "op_definition_name",
            lambda: self._spec().get_op_spec(experiment, stage.name, stage_cls).description,
        )

    def op_tags(
        self, experiment: Experiment, stage: StageDef, stage_cls: type[Stage]
    ) -> dict[str, str]:
        return self._alias(
            "op_definition_name",
            lambda: self._spec().get_op_spec(experiment, stage.name, stage_cls).tags,
        )

    def step_tags(self, experiment: Experiment, step: str) -> dict[str, str]:
        return self._alias("step_tags", lambda: self._spec().get_op_spec(experiment, step).tags)

    # assets
    def report_asset_key(self, experiment: Experiment, output: OutputSpec) -> dg.AssetKey:
        return self._alias(
            "report_asset_key", lambda: self._spec().get_asset_spec(experiment, output).key
        )

    def _shared(self, experiment: Experiment, attribute: str) -> Any:
        return self._spec()._asset_attributes(experiment)[attribute]

    def group_name(self, experiment: Experiment) -> str:
        return self._alias("group_name", lambda: str(self._shared(experiment, "group_name")))

    def asset_tags(self, experiment: Experiment) -> dict[str, str]:
        return self._alias("asset_tags", lambda: dict(self._shared(experiment, "tags")))

    def owners(self, experiment: Experiment) -> list[str]:
        return self._alias("owners", lambda: list(self._shared(experiment, "owners")))

    def code_version(self, experiment: Experiment) -> str:
        return self._alias("code_version", lambda: str(self._shared(experiment, "code_version")))

    def dataset_deps(self, experiment: Experiment) -> list[dg.AssetKey]:
        return self._alias("dataset_deps", lambda: list(self._shared(experiment, "deps")))

    def automation_condition(self, experiment: Experiment) -> dg.AutomationCondition | None:
        return self._alias(
            "automation_condition", lambda: self._shared(experiment, "automation_condition")
        )

    def dataset_asset_key(self, experiment: Experiment) -> dg.AssetKey | None:
        return self._alias("dataset_asset_key", lambda: self._spec()._dataset_key(experiment))

    def sweep_asset_key(self, experiment: Experiment) -> dg.AssetKey:
        return self._alias(
            "sweep_asset_key", lambda: self._spec().get_sweep_asset_spec(experiment).key
        )

    def quality_check_asset_key(self, experiment: Experiment) -> dg.AssetKey | None:
        return self._alias(
            "quality_check_asset_key", lambda: self._spec()._check_asset_key(experiment)
        )

    # schedules and invalid files
    def schedule_name(self, experiment: Experiment) -> str:
        return self._alias("schedule_name", lambda: self._spec().get_schedule_spec(experiment).name)

    def schedule_description(self, experiment: Experiment) -> str:
        return self._alias(
            "schedule_description", lambda: self._spec().get_schedule_spec(experiment).description
        )

    def invalid_file_asset_key(self, relative_path: Path) -> dg.AssetKey:
        return self._alias(
            "invalid_file_asset_key",
            lambda: self._spec().get_invalid_file_asset_spec(relative_path).key,
        )

    def invalid_file_asset_tags(self) -> dict[str, str]:
        return self._alias(
            "invalid_file_asset_tags",
            lambda: dict(self._spec().get_invalid_file_asset_spec(Path("file")).tags),
        )
