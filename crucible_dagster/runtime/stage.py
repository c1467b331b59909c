"""The stage contract: a class with an ``Options`` model, ``run(ctx, options) -> Context`` and ``describe()``.

Returning an error and raising are equivalent for the user: raise ``StageError``
(or any exception) and the runner turns it into a stage failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from crucible_dagster.experiment.explain import explain_error
from crucible_dagster.experiment.option_schema import describe_options, field_default
from crucible_dagster.experiment.strict_numbers import RefuseBoolForNumbers

if TYPE_CHECKING:
    from crucible_dagster.runtime.context import Context

ValidateMode = Literal["error", "warn", "off"]
VALIDATE_MODES: tuple[ValidateMode, ...] = ("error", "warn", "off")


class StageOptions(RefuseBoolForNumbers):
    """Base for option models: unknown keys are errors (they hide typos such as ``aplha``), and
    so is ``true`` for a number (the Launchpad refuses it too)."""

    model_config = ConfigDict(extra="forbid")


class StageError(Exception):
    """A stage's own failure reason, e.g. ``StageError("data_checks_failed", issues)``."""

    def __init__(self, reason: str, details: Any = None, message: str | None = None):
        self.reason = reason
        self.details = details
        super().__init__(message or (f"{reason}: {details!r}" if details is not None else reason))


class InvalidOptions(StageError):
    def __init__(self, stage: str, errors: list[str]):
        self.errors = errors
        super().__init__(
            "invalid_options", errors, f"invalid options for stage {stage!r}: " + "; ".join(errors)
        )


class Stage:
    """Subclass, set ``name``/``description``, declare ``Options`` and implement ``run``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    version: ClassVar[str | None] = None
    tags: ClassVar[Mapping[str, str]] = {}
    Options: ClassVar[type[BaseModel]] = StageOptions
    #: A hand-written schema in the original's format; when set, ``run`` receives a plain dict.
    #: Checked by ``experiment.legacy_options``, imported only for such a stage.
    legacy_schema: ClassVar[Mapping[str, Any] | None] = None
    #: IR settings this stage acts on (``backend``, ``reliability.ensemble`` ...): a file that
    #: sets one with no stage using it is refused, so no setting is silently ignored
    uses: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def check_experiment(cls, experiment: Any) -> list[tuple[str, str]]:
        """(field path, problem) for the IR settings this stage uses; checked before a run."""
        return []

    def run(self, ctx: Context, options: Any) -> Context:
        raise NotImplementedError(f"{type(self).__name__}.run is not implemented")

    @classmethod
    def stage_name(cls) -> str:
        return cls.name or cls.__name__

    @classmethod
    def qualified_name(cls) -> str:
        return f"{cls.__module__}:{cls.__qualname__}"

    @classmethod
    def describe(cls) -> dict[str, Any]:
        if cls.legacy_schema is not None:
            from crucible_dagster.experiment.legacy_options import describe_legacy

            return describe_legacy(cls.legacy_schema)
        description = (
            cls.description or (cls.__doc__ or "").strip().split("\n")[0] or cls.stage_name()
        )
        return describe_options(cls.stage_name(), description, cls.Options, cls.version)

    @classmethod
    def check_options(cls, raw: Mapping[str, Any]) -> list[str]:
        """Every problem with ``raw`` options, as ``field: expected X, got Y`` lines."""
        return cls._parse(raw)[1]

    @classmethod
    def parse_options(
        cls, raw: Mapping[str, Any] | None, mode: ValidateMode = "error"
    ) -> tuple[Any, list[str]]:
        """Validated options for ``run`` plus warnings; raises InvalidOptions in ``error`` mode."""
        options, errors = cls._parse(raw or {})
        if errors and mode == "error":
            raise InvalidOptions(cls.stage_name(), errors)
        if mode == "off":
            errors = []
        return options, errors

    @classmethod
    def _parse(cls, raw: Mapping[str, Any]) -> tuple[Any, list[str]]:
        if cls.legacy_schema is not None:
            from crucible_dagster.experiment.legacy_options import parse_legacy_options

            return parse_legacy_options(raw, cls.legacy_schema)
        model = cls.Options
        fields = model.model_fields
        # The Launchpad and `dagster job scaffold_config` send null for defaulted fields: it means "the default".
        cleaned = {
            k: v
            for k, v in raw.items()
            if not (
                v is None
                and k in fields
                and not fields[k].is_required()
                and field_default(fields[k]) is not None
            )
        }
        try:
            return model.model_validate(cleaned), []
        except ValidationError as exc:
            errors = []
            for err in exc.errors():
                field, message = explain_error(err, model)
                errors.append(f"{field}: {message}" if field else message)
            known = {k: v for k, v in cleaned.items() if k in fields}
            try:
                fallback = model.model_validate(known)
            except ValidationError:
                fallback = model.model_construct(**known)
            return fallback, errors


class NoOptionsStage(Stage):
    """Convenience base for stages that take no options."""


_DESCRIBED: dict[type[Stage], dict[str, Any]] = {}


def described(stage_cls: type[Stage]) -> dict[str, Any]:
    """``stage_cls.describe()``, computed once per class (it is derived from the class alone)."""
    if stage_cls not in _DESCRIBED:
        _DESCRIBED[stage_cls] = stage_cls.describe()
    return _DESCRIBED[stage_cls]


def reliability_setting(experiment: Any, name: str) -> Any:
    """``experiment.reliability.<name>``, or None when the experiment or the block is unset."""
    reliability = getattr(experiment, "reliability", None)
    return getattr(reliability, name, None) if reliability is not None else None


def setting_problems(experiment: Any, name: str, stage: str, example: str) -> list[tuple[str, str]]:
    """A stage's ``check_experiment`` for the ``reliability.<name>`` it reads: a located problem
    when the experiment does not set it."""
    if reliability_setting(experiment, name) is not None:
        return []
    return [(f"reliability.{name}", f"the {stage} stage needs reliability.{name}: {example}")]


def required_setting(ctx: Context, name: str, stage: str, example: str) -> Any:
    """The ``reliability.<name>`` a stage reads at run time; a StageError without it (a stage
    run by hand, outside a checked experiment)."""
    found = reliability_setting(ctx.experiment, name)
    if found is None:
        raise StageError(f"missing_{name}_config", None,
                         f"the {stage} stage needs reliability.{name}: {example}")  # fmt: skip
    return found
