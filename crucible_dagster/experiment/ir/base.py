"""The IR's building blocks: the base model that refuses unknown keys, and number types that
refuse ``true`` where a count belongs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, AllowInfNan, BeforeValidator, ConfigDict, Field

from crucible_dagster.experiment.strict_numbers import (
    RefuseBoolForNumbers,
    bool_for_number,
    text_or_float_for_int,
)

Name = Annotated[str, Field(min_length=1)]


def _refuse_bool(what: str) -> Any:
    """A setting that counts or measures refuses ``true`` (pydantic would read it as 1), as the
    Dagster loader and the run do."""

    def check(value: Any) -> Any:
        if isinstance(value, bool):
            raise bool_for_number(what, value)
        problem = text_or_float_for_int(value) if what == "an integer" else None
        if problem is not None:
            raise problem
        return value

    return BeforeValidator(check)


#: an integer setting: ``true`` is refused, not read as 1
Int = Annotated[int, _refuse_bool("an integer")]
#: a number setting: ``true``, ``.inf`` and ``.nan`` are refused
Float = Annotated[float, _refuse_bool("a number"), AllowInfNan(False)]


class IRModel(RefuseBoolForNumbers):
    """Base for every IR model: unknown keys are errors, values are re-validated on assignment,
    bools and integers are strict (``enabled: "no"`` and ``0`` are not false)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_assignment=True)


def first_repeat(values: Sequence[Any]) -> int | None:
    """The index of the first value equal to an earlier one, or None when all are distinct: a
    repeated grid value, seed or report format would run (or be written) twice under one name."""
    for index, item in enumerate(values):
        if item in values[:index]:
            return index
    return None


def distinct(what: str) -> Any:
    """A list field's validator (``Annotated[list[T], distinct("features")]``): a value listed
    twice is refused, naming it (None passes)."""

    def check(value: Any) -> Any:
        index = first_repeat(value) if value is not None else None
        if index is not None:
            raise ValueError(f"expected distinct {what}, got {value[index]!r} twice")
        return value

    return AfterValidator(check)


SEED_MAX = 2**32 - 1  # numpy's legacy RandomState and scikit-learn take unsigned 32-bit seeds
Seed = Annotated[
    Int, Field(ge=0, le=SEED_MAX, description="An unsigned 32-bit integer (0 to 4294967295).")
]
