"""Turn pydantic validation errors into 'expected X, got Y' sentences a user can act on."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from enum import Enum
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from typing_extensions import is_typeddict

from crucible_dagster.experiment.problems import format_loc, short_repr

#: why a word reached a field as true or false
YAML11_BOOL_HINT = "YAML reads unquoted yes, no, on and off as true or false: quote the word"

_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "string": "a string",
    "list": "a list",
    "dict": "a mapping",
    "model": "a mapping",
    "datetime": "an ISO-8601 date-time",
}


def _strip_optional(annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _strip_optional(args[0])
    if origin is typing.Annotated:
        return _strip_optional(get_args(annotation)[0])
    return annotation


def _member_with(annotation: Any, field: str) -> Any:
    """The model of a union (``baseline``: a model reference or the gate) that has ``field``."""
    if get_origin(annotation) not in (Union, types.UnionType):
        return annotation
    for member in map(_strip_optional, get_args(annotation)):
        is_model = isinstance(member, type) and issubclass(member, BaseModel)
        if is_model and field in member.model_fields:
            return member
    return annotation


def field_at(model: type[BaseModel], loc: Sequence[str | int]) -> FieldInfo | None:
    """Follow ``loc`` through nested models and containers to the field it names."""
    current: Any = model
    info: FieldInfo | None = None
    for part in loc:
        current = _strip_optional(current)
        if isinstance(part, str):
            current = _member_with(current, part)
        if isinstance(part, int):
            args = get_args(current)
            current = args[0] if args else Any
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = current.model_fields
            by_alias = {f.alias: f for f in fields.values() if f.alias}
            info = fields.get(part) or by_alias.get(part)
            if info is None:
                return None
            current = info.annotation
        elif get_origin(current) is dict:
            args = get_args(current)
            current = args[1] if len(args) == 2 else Any
        else:
            return None
    return info


def model_at(model: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class whose fields live at ``loc`` (for listing valid keys)."""
    current: Any = model
    for part in loc:
        current = _strip_optional(current)
        if isinstance(part, int):
            args = get_args(current)
            current = args[0] if args else None
        elif isinstance(current, type) and issubclass(current, BaseModel):
            fields = current.model_fields
            by_alias = {f.alias: f for f in fields.values() if f.alias}
            info = fields.get(part) or by_alias.get(part)
            current = info.annotation if info else None
        elif get_origin(current) is dict:
            args = get_args(current)
            current = args[1] if len(args) == 2 else None
        else:
            return None
    current = _strip_optional(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _bounds(info: FieldInfo | None) -> str:
    if info is None:
        return ""
    low: Any = None
    high: Any = None
    low_strict = high_strict = False
    for meta in info.metadata:
        if isinstance(meta, annotated_types.Ge):
            low = meta.ge
        elif isinstance(meta, annotated_types.Gt):
            low, low_strict = meta.gt, True
        elif isinstance(meta, annotated_types.Le):
            high = meta.le
        elif isinstance(meta, annotated_types.Lt):
            high, high_strict = meta.lt, True
    if low is not None and high is not None:
        if not (low_strict or high_strict):
            return f" between {low} and {high}"
        return f" in {'(' if low_strict else '['}{low}, {high}{')' if high_strict else ']'}"
    if low is not None:
        return f" {'>' if low_strict else '>='} {low}"
    if high is not None:
        return f" {'<' if high_strict else '<='} {high}"
    return ""


def describe_annotation(annotation: Any) -> str:
    """A short English phrase for a type: 'a number', 'one of: a, b', 'a list of integers'."""
    annotation = _strip_optional(annotation)
    origin = get_origin(annotation)
    if origin is Literal:
        return "one of: " + ", ".join(str(a) for a in get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "one of: " + ", ".join(str(m.value) for m in annotation)
    if origin in (list, tuple, set):
        args = get_args(annotation)
        inner = describe_annotation(args[0]) if args else "values"
        return f"a list of {inner}"
    if origin is dict:
        return "a mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "a mapping"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


_NUMBER_KINDS = frozenset(
    {
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "int_parsing",
        "int_type",
        "int_from_float",
        "float_parsing",
        "float_type",
        "finite_number",
    }
)


_CTX_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))


def explain_error(err: ErrorDetails, model: type[BaseModel]) -> tuple[str, str]:
    """Return ``(field_path, message)`` for one pydantic error."""
    loc = list(err["loc"])
    kind = err["type"]
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    got = short_repr(err.get("input"))
    field_path = ctx.get("field") or format_loc(loc)
    info = field_at(model, loc)
    if kind == "missing":
        return field_path, "expected a value (this field is required), got nothing"
    if kind == "extra_forbidden":
        return field_path, _unknown_field(model, loc)
    if kind in ("literal_error", "enum"):
        message = f"expected one of: {_choices(info, ctx)}, got {got}"
        if isinstance(err.get("input"), bool):
            message += f" ({YAML11_BOOL_HINT})"
        return field_path, message
    if kind in _NUMBER_KINDS:
        base = "an integer" if kind.startswith("int") else "a number"
        declared = describe_annotation(info.annotation) if info is not None else None
        if declared in ("an integer", "a number"):
            base = str(declared)
        bounds = _bounds(info) or "".join(
            f" {symbol} {ctx[key]}" for key, symbol in _CTX_BOUNDS if key in ctx
        )
        if kind.startswith(("greater", "less")) and isinstance(err.get("input"), int):
            # a list item's bound: its type is not the field's (a float field keeps 'a number')
            base = "an integer" if base == "a number" and declared != "a number" else base
        if kind == "finite_number":  # .inf and .nan are floats YAML reads, never a setting
            base = "a finite number"
        return field_path, f"expected {base}{bounds}, got {got}"
    return field_path, _other_error(err, kind, ctx, info, got)


def _keys_at(model: type[BaseModel], loc: list[Any]) -> list[str] | None:
    """The keys a mapping at ``loc`` may have: a model's fields, or a TypedDict's keys."""
    parent = model_at(model, loc)
    if parent is not None:
        return sorted(f.alias or n for n, f in parent.model_fields.items())
    owner = model_at(model, loc[:-1]) if loc and isinstance(loc[-1], str) else None
    info = owner.model_fields.get(loc[-1]) if owner is not None else None
    annotation = _strip_optional(info.annotation) if info is not None else None
    return sorted(typing.get_type_hints(annotation)) if is_typeddict(annotation) else None


def _unknown_field(model: type[BaseModel], loc: list[Any]) -> str:
    valid = _keys_at(model, loc[:-1])
    key = str(loc[-1])
    if valid is None:
        return f"unknown field {key!r}"
    if not valid:
        return f"unknown field {key!r}; expected no fields here"
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown field {key!r}; expected one of: {', '.join(valid)}{hint}"


def _choices(info: FieldInfo | None, ctx: dict[str, Any]) -> str:
    if info is None:
        return str(ctx.get("expected", ""))
    annotation = _strip_optional(info.annotation)
    origin = get_origin(annotation)
    if origin in (list, dict):  # a list item's choices, or a mapping value's
        args = get_args(annotation)
        if args:
            return describe_annotation(args[-1]).removeprefix("one of: ")
        return str(ctx.get("expected", ""))
    return describe_annotation(info.annotation).removeprefix("one of: ")


def _other_error(
    err: ErrorDetails, kind: str, ctx: dict[str, Any], info: FieldInfo | None, got: str
) -> str:
    if kind in ("too_short", "too_long"):
        if kind == "too_short":
            return f"expected at least {ctx.get('min_length')} item(s), got {got}"
        return f"expected at most {ctx.get('max_length')} item(s), got {got}"
    if kind == "string_too_short":
        return f"expected a non-empty string, got {got}"
    if kind == "string_pattern_mismatch":
        return f"expected a string matching {ctx.get('pattern')!r}, got {got}"
    if kind in ("value_error", "assertion_error"):
        return err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind.endswith("_type") or kind.endswith("_parsing"):
        word = kind.split("_")[0]
        expected = _TYPE_WORDS.get(word)
        if info is not None and (expected is None or kind in ("model_type", "dict_type")):
            expected = describe_annotation(info.annotation)
        hint = (
            f" ({YAML11_BOOL_HINT})"
            if kind == "string_type" and isinstance(err.get("input"), bool)
            else ""
        )
        return f"expected {expected or word}, got {got}{hint}"
    if kind in ("model_attributes_type", "dict_type", "model_type"):
        return f"expected a mapping, got {got}"
    return err["msg"]
