"""Scorer ids -> classes: built-ins, the ``crucible_dagster.scorers`` entry points, dotted paths.

``score.options.scorers: [{name: em, id: exact_match, options: {...}}, {id: bleu}]``: each entry
is a ``ScorerRef``, its id resolved and kind-checked by the one resolver of named code and its
options validated by the scorer's own model, at ``validate``, by the Dagster loader and at run
start alike (the score stage's options validate through it), before anything is called.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crucible_dagster.common.field_errors import as_field_error, checked_by
from crucible_dagster.common.plugins import entry_point_table
from crucible_dagster.runtime.code_refs import resolve_plugin
from crucible_dagster.scorers.base import Scorer, ScorerOptions

ENTRY_POINT_GROUP = "crucible_dagster.scorers"
BUILTIN_SCORERS = {
    "exact_match": "crucible_dagster.scorers.text:ExactMatch",
    "contains": "crucible_dagster.scorers.text:Contains",
    "regex": "crucible_dagster.scorers.text:Regex",
    "token_f1": "crucible_dagster.scorers.text:TokenF1",
    "numeric": "crucible_dagster.scorers.numeric:Numeric",
    "absolute_error": "crucible_dagster.scorers.numeric:AbsoluteError",
    "squared_error": "crucible_dagster.scorers.numeric:SquaredError",
    "bleu": "crucible_dagster.scorers.overlap:Bleu",
    "chrf": "crucible_dagster.scorers.overlap:Chrf",
    "rouge": "crucible_dagster.scorers.overlap:Rouge",
    "json_match": "crucible_dagster.scorers.structured:JsonMatch",
    "judge": "crucible_dagster.scorers.judge:Judge",
}
#: a scorer's name becomes a column (score_<name>) and a metrics key
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class ScorerError(ValueError):
    """A scorer that cannot be built: the message names the field and what was expected."""


def _table() -> dict[str, str]:
    return {**entry_point_table(ENTRY_POINT_GROUP), **BUILTIN_SCORERS}


def scorer_names() -> list[str]:
    return sorted(_table())


def scorer_class(scorer_id: str, where: str = "id") -> type[Scorer]:
    """The class a scorer id names; ``ScorerError`` with the choices when it names none."""
    path = scorer_id if ":" in scorer_id else _table().get(scorer_id)
    if path is None:
        import difflib

        close = difflib.get_close_matches(scorer_id, scorer_names(), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ScorerError(
            f"{where}: {hint}expected a scorer ({', '.join(scorer_names())}, an entry point in "
            f"{ENTRY_POINT_GROUP}, or 'package.module:Class'), found {scorer_id!r}"
        )
    cls: type[Scorer] = resolve_plugin(path, "scorer", ScorerOptions, ScorerError, where)
    return cls


def scorer_options(cls: type[Scorer], options: dict[str, Any], where: str) -> ScorerOptions:
    """The scorer's options, validated by its own model; the message names the field."""
    from crucible_dagster.experiment.explain import explain_error

    try:
        return cls.Options.model_validate(options)
    except ValidationError as exc:
        field, message = explain_error(exc.errors()[0], cls.Options)
        raise ScorerError(f"{where}{'.' + field if field else ''}: {message}") from None


class ScorerRef(BaseModel):
    """One scorer of a score stage: ``{name, id, options}``; the name defaults to the id."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        default=None,
        description="The score's name: its column is score_<name> (default: the id).",
    )
    id: Annotated[str, checked_by(scorer_class, ScorerError, "id: ")] = Field(
        description="A built-in scorer, an entry point, or 'package.module:Class'."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="The scorer's options.")

    @field_validator("name")
    @classmethod
    def _column_name(cls, value: str | None) -> str | None:
        if value is not None and not NAME.match(value):
            raise ValueError(
                f"expected a name of letters, digits and _ (not first), found {value!r:.80}"
            )
        return value

    @field_validator("options")
    @classmethod
    def _options_validate(cls, value: dict[str, Any], info: Any) -> dict[str, Any]:
        scorer_id = info.data.get("id")
        if scorer_id is not None:  # else the id's own problem is reported
            with as_field_error(ScorerError, "options.", "options: "):
                scorer_options(scorer_class(scorer_id), value, "options")
        return value

    @property
    def column_name(self) -> str:
        """The name, or for a dotted path its class's name in lower case."""
        if self.name is not None:
            return self.name
        return self.id.rpartition(":")[2].rpartition(".")[2].lower() if ":" in self.id else self.id


def build_scorer(ref: ScorerRef, where: str = "scorer") -> Scorer:
    """The scorer the reference describes, its options validated."""
    cls = scorer_class(ref.id, f"{where}.id")
    return cls(scorer_options(cls, ref.options, f"{where}.options"))
