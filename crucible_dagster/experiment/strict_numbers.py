"""``true`` is not a number: YAML reads ``true``/``yes``/``on`` as booleans and pydantic would
take them as 1. Dagster's config (the Launchpad) refuses a boolean for an Int or a Float; so do
``crucible validate`` and a run start, through these."""

from __future__ import annotations

import types
import typing
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError


def bool_for_number(what: str, value: bool) -> PydanticCustomError:
    return PydanticCustomError(
        "bool_for_number",
        "expected {what}, got {value} (true/false is not a number)",
        {"what": what, "value": str(value).lower()},
    )


def number_kind(annotation: Any) -> str | None:
    """'an integer' or 'a number' when ``annotation`` takes only numbers (and None), else None."""
    if get_origin(annotation) is typing.Annotated:
        return number_kind(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        kinds = {number_kind(a) for a in members}
        if not members or None in kinds:
            return None
        return "an integer" if kinds == {"an integer"} else "a number"
    return {int: "an integer", float: "a number"}.get(annotation)


class RefuseBoolForNumbers(BaseModel):
    """Base for option models: a boolean given for a number field is refused at that field."""

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name in cls.model_fields:
            what = number_kind(cls.model_fields[info.field_name].annotation)
            if what is not None:
                raise bool_for_number(what, value)
        return value
