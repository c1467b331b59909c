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


def _int_text(value: Any) -> bool:
    try:
        return isinstance(value, str) and int(value) is not None
    except ValueError:
        return False


def text_or_float_for_int(value: Any) -> PydanticCustomError | None:
    """``"3"`` or ``2.0`` where an integer belongs: pydantic would read both as an integer,
    Dagster's config refuses them, and so does the IR (strict, like the Launchpad). Other text
    and fractions are left to pydantic's own message, which names the bounds."""
    if (isinstance(value, float) and value.is_integer()) or _int_text(value):
        return PydanticCustomError(
            "int_strict", "expected an integer, got {value}", {"value": repr(value)}
        )
    return None


def is_bool_only(annotation: Any) -> bool:
    """Whether ``annotation`` takes only ``true``/``false`` (and None)."""
    if get_origin(annotation) is typing.Annotated:
        return is_bool_only(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        return bool(members) and all(is_bool_only(a) for a in members)
    return annotation is bool


def strict_problem(annotation: Any, value: Any) -> PydanticCustomError | None:
    """Why ``value`` does not fit a bool, integer or number field strictly (None if it fits or
    the field is of another kind): true for a number, text or 2.0 for an integer, and anything
    but true/false for a bool (pydantic would read "no" and 0 as false)."""
    what = number_kind(annotation)
    if what is not None and isinstance(value, bool):
        return bool_for_number(what, value)
    if what == "an integer":
        return text_or_float_for_int(value)
    if value is not None and not isinstance(value, bool) and is_bool_only(annotation):
        return PydanticCustomError(
            "bool_strict", "expected true or false, got {value}", {"value": repr(value)}
        )
    return None


class RefuseBoolForNumbers(BaseModel):
    """Base for option models: a boolean given for a number field, text or 2.0 for an integer
    field, and anything but true/false for a bool field are refused at that field."""

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name in cls.model_fields:
            problem = strict_problem(cls.model_fields[info.field_name].annotation, value)
            if problem is not None:
                raise problem
        return value
