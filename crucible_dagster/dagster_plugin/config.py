"""Stage options model -> Dagster config schema, so the Launchpad shows typed, pre-filled fields.

Dagster only type-checks at submit; the op re-validates with the stage's own model
when it starts. Types Dagster cannot express (unions, tuples, functions, nested
models) fall back to a permissive ``Any`` field.
"""

from __future__ import annotations

import json
import types
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import dagster as dg
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from crucible_dagster.common.jsonsafe import to_jsonable
from crucible_dagster.dagster_plugin.resource import CHECKED_AT_START
from crucible_dagster.experiment.option_schema import as_type_spec, field_default, normalize_schema
from crucible_dagster.runtime.stage import Stage, described

_SCALARS: dict[str, Any] = {
    "string": dg.String,
    "atom": dg.String,
    "module": dg.String,
    "integer": dg.Int,
    "float": dg.Float,
    "boolean": dg.Bool,
    "map": dg.Permissive(),
    "list": dg.Array(dg.Any),
    "any": dg.Any,
}


def spec_to_config_type(spec: Any, enum_name: str) -> Any:
    spec = as_type_spec(spec)
    if isinstance(spec, str):
        return _SCALARS.get(spec, dg.Any)
    if isinstance(spec, tuple) and spec:
        kind = spec[0]
        if kind == "list":
            return dg.Array(spec_to_config_type(spec[1], enum_name))
        if kind == "map" and as_type_spec(spec[1]) in ("string", "atom"):
            return dg.Map(str, spec_to_config_type(spec[2], enum_name))
        if kind == "map":
            return dg.Permissive()
        if kind == "enum" and spec[1] and all(isinstance(v, str) for v in spec[1]):
            return dg.Enum(enum_name, [dg.EnumValue(v) for v in spec[1]])
    return dg.Any


ConfigTypes = tuple[dict[str, Any], frozenset[str], dict[str, Any], dict[str, str], bool]
_CONFIG_TYPES: dict[type[Stage], ConfigTypes] = {}


def stage_config_types(stage_cls: type[Stage]) -> ConfigTypes:
    """Built once per stage class: config types, required keys, model defaults, descriptions, extra-allowed.

    Straight from the stage's pydantic ``Options``; only a stage with a hand-written
    ``legacy_schema`` goes through the original's type specs.
    """
    if stage_cls not in _CONFIG_TYPES:
        if stage_cls.legacy_schema is not None:
            _CONFIG_TYPES[stage_cls] = _legacy_config_types(stage_cls)
        else:
            _CONFIG_TYPES[stage_cls] = _model_config_types(stage_cls)
    return _CONFIG_TYPES[stage_cls]


def _model_config_types(stage_cls: type[Stage]) -> ConfigTypes:
    model = stage_cls.Options
    types, defaults, descriptions = {}, {}, {}
    for key, info in model.model_fields.items():
        types[key] = annotation_config_type(info.annotation, f"{stage_cls.__name__}_{key}")
        default = field_default(info)
        if not info.is_required() and default is not PydanticUndefined and default is not None:
            defaults[key] = to_jsonable(default)
        description = field_description(info)
        if description:
            descriptions[key] = description
    required = frozenset(k for k, info in model.model_fields.items() if info.is_required())
    extra = model.model_config.get("extra") == "allow"
    return types, required, defaults, descriptions, extra


def _legacy_config_types(stage_cls: type[Stage]) -> ConfigTypes:
    schema = normalize_schema(described(stage_cls))
    base = stage_cls.__name__
    types = {
        key: spec_to_config_type(spec, f"{base}_{key}") for key, spec in schema["types"].items()
    }
    extensions = schema.get("__extensions__") or {}
    descriptions = dict(extensions.get("descriptions") or {})
    extra = bool(extensions.get("accepts_extra_keys")) or not schema["types"]
    defaults = dict(schema.get("defaults") or {})
    return types, frozenset(schema["required"]), defaults, descriptions, extra


_SCALAR_TYPES: dict[Any, Any] = {bool: dg.Bool, int: dg.Int, float: dg.Float, str: dg.String}


def annotation_config_type(annotation: Any, enum_name: str) -> Any:
    """The Dagster config type for a pydantic field's annotation; ``Any`` where none fits.

    ``Optional`` is left to the field (every defaulted field is Noneable). A list of
    literals becomes a list of strings: Dagster rejects enums inside lists with defaults.
    """
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return annotation_config_type(args[0], enum_name)
    if origin in (Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        return annotation_config_type(members[0], enum_name) if len(members) == 1 else dg.Any
    if origin is Literal:
        values = list(args)
        if values and all(isinstance(v, str) for v in values):
            return dg.Enum(enum_name, [dg.EnumValue(v) for v in values])
        return dg.Any
    if annotation in _SCALAR_TYPES:
        return _SCALAR_TYPES[annotation]
    if origin in (list, set, frozenset) or (origin is tuple and args[-1:] == (Ellipsis,)):
        inner = args[0] if args else Any
        if get_origin(inner) is Literal:
            return dg.Array(dg.String)
        return dg.Array(annotation_config_type(inner, enum_name))
    if origin in (dict, Mapping) and args and args[0] is str:
        return dg.Map(str, annotation_config_type(args[1], enum_name))
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        return dg.Permissive()
    if annotation is list:
        return dg.Array(dg.Any)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _model_shape(annotation, enum_name)
    return dg.Any


#: the nested models being typed, so a model that contains itself stays ``Any`` at the repeat
_TYPING: set[type[BaseModel]] = set()


def _model_shape(model: type[BaseModel], enum_name: str) -> Any:
    """A nested options model (``models: {name: {estimator, params}}``) as typed fields, so the
    Launchpad offers its keys and choices instead of one untyped value."""
    if model in _TYPING:
        return dg.Any
    _TYPING.add(model)
    try:
        fields = {
            key: dg.Field(
                annotation_config_type(info.annotation, f"{enum_name}_{key}"),
                is_required=info.is_required(),
                description=field_description(info) or None,
            )
            for key, info in model.model_fields.items()
        }
    finally:
        _TYPING.discard(model)
    extra = model.model_config.get("extra") == "allow"
    return dg.Permissive(fields) if extra else dg.Shape(fields)


_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))


def field_description(info: FieldInfo) -> str:
    """The field's description plus what the Launchpad cannot enforce: bounds and allowed values."""
    notes = []
    for item in info.metadata:
        for attr, symbol in _BOUNDS:
            bound = getattr(item, attr, None)
            if bound is not None:
                notes.append(f"{symbol} {bound}")
        for attr, label in (
            ("min_length", "at least {} items"),
            ("max_length", "at most {} items"),
        ):
            length = getattr(item, attr, None)
            if length is not None:
                notes.append(label.format(length))
    if notes:  # a range Dagster's config cannot hold: say where it is enforced
        notes.append(CHECKED_AT_START)
    allowed = _allowed_values(info.annotation)
    if allowed:
        notes.append("one of " + ", ".join(repr(v) for v in allowed))
    text = info.description or ""
    if notes:
        text = f"{text} ({'; '.join(notes)})" if text else "; ".join(notes)
    return text


def _allowed_values(annotation: Any) -> list[Any]:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return list(args)
    if origin in (Annotated, Union, types.UnionType, list, set, frozenset, tuple):
        return [v for arg in args for v in _allowed_values(arg)]
    return []


_FIELDS: dict[tuple[int, bool, str, bool, str | None], dg.Field] = {}


def _field(
    config_type: Any, *, required: bool, default: Any, has_default: bool, description: str | None
) -> dg.Field:
    """Fields are immutable, so identical ones (same type, default, description) are built once.

    Building a Field validates its default, which dominates loading many experiments.
    """
    key = (id(config_type), required, json.dumps(default, sort_keys=True), has_default, description)
    cached = _FIELDS.get(key)
    if cached is not None:
        return cached
    if required and not has_default:
        field = dg.Field(config_type, is_required=True, description=description)
    else:
        kwargs: dict[str, Any] = {"is_required": False, "description": description}
        if has_default:
            kwargs["default_value"] = default
        field = dg.Field(dg.Noneable(config_type), **kwargs)
    _FIELDS[key] = field
    return field


def options_config_schema(stage_cls: type[Stage], written: Mapping[str, Any]) -> dg.Field:
    """Config schema for one op: typed fields, defaults = the options written in the experiment file.

    Built once per (stage class, written options): experiments that share a stage
    configuration share the (immutable) schema.
    """
    cache_key = (stage_cls, json.dumps(to_jsonable(dict(written)), sort_keys=True))
    if cache_key in _SCHEMAS:
        return _SCHEMAS[cache_key]
    # A Field, not a bare Shape: Dagster resolves defaults when a Field is built, so a shared
    # Field saves that work for every op that reuses it.
    schema = dg.Field(_build_options_config_schema(stage_cls, written))
    _SCHEMAS[cache_key] = schema
    return schema


_SCHEMAS: dict[tuple[type[Stage], str], dg.Field] = {}


def _build_options_config_schema(
    stage_cls: type[Stage], written: Mapping[str, Any]
) -> dg.Shape | dg.Permissive:
    types, required, model_defaults, descriptions, extra = stage_config_types(stage_cls)
    fields: dict[str, dg.Field] = {}
    written_json = to_jsonable(dict(written))
    for key, config_type in types.items():
        # What the file wrote is pre-filled in the Launchpad; the stage's own default is said in
        # the description and applies when the field is left out, as if nobody had chosen it.
        has_written = key in written_json
        description = descriptions.get(key)
        if not has_written and key in model_defaults:
            shown = f"default: {json.dumps(to_jsonable(model_defaults[key]))}"
            description = f"{description} ({shown})" if description else shown
        default = written_json.get(key)
        try:
            fields[key] = _field(
                config_type,
                required=key in required and not has_written,
                default=default,
                has_default=has_written,
                description=description,
            )
        except (dg.DagsterInvalidConfigError, dg.DagsterInvalidDefinitionError):
            # e.g. "${params.lr}" written where a float goes: keep the value, loosen the type.
            fields[key] = _field(
                dg.Any,
                required=key in required and not has_written,
                default=default,
                has_default=has_written,
                description=description,
            )
    for key in written_json:
        if key not in fields:
            # Unknown keys stay visible; the stage's own validation reports them when the op starts.
            fields[key] = dg.Field(dg.Any, is_required=False, default_value=written_json[key])
    return dg.Permissive(fields) if extra else dg.Shape(fields)
