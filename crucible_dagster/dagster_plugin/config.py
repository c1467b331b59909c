"""Stage options schema -> Dagster config schema, so the Launchpad shows typed, pre-filled fields.

Dagster only type-checks at submit; the op re-validates with the stage's own model
when it starts. Types Dagster cannot express (unions, tuples, functions, nested
models) fall back to a permissive ``Any`` field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import dagster as dg

from crucible_dagster.common.jsonsafe import to_jsonable
from crucible_dagster.experiment.option_schema import _as_spec, normalize_schema
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
    spec = _as_spec(spec)
    if isinstance(spec, str):
        return _SCALARS.get(spec, dg.Any)
    if isinstance(spec, tuple) and spec:
        kind = spec[0]
        if kind == "list":
            return dg.Array(spec_to_config_type(spec[1], enum_name))
        if kind == "map" and _as_spec(spec[1]) in ("string", "atom"):
            return dg.Map(str, spec_to_config_type(spec[2], enum_name))
        if kind == "map":
            return dg.Permissive()
        if kind == "enum" and spec[1] and all(isinstance(v, str) for v in spec[1]):
            return dg.Enum(enum_name, [dg.EnumValue(v) for v in spec[1]])
    return dg.Any


ConfigTypes = tuple[dict[str, Any], frozenset[str], dict[str, Any], dict[str, str], bool]
_CONFIG_TYPES: dict[type[Stage], ConfigTypes] = {}


def stage_config_types(
    stage_cls: type[Stage],
) -> ConfigTypes:
    """Built once per stage class: config types, required keys, model defaults, descriptions, extra-allowed."""
    if stage_cls in _CONFIG_TYPES:
        return _CONFIG_TYPES[stage_cls]
    schema = normalize_schema(described(stage_cls))
    base = f"{stage_cls.__name__}"
    types = {
        key: spec_to_config_type(spec, f"{base}_{key}") for key, spec in schema["types"].items()
    }
    descriptions = dict((schema.get("__extensions__") or {}).get("descriptions") or {})
    extra = bool((schema.get("__extensions__") or {}).get("accepts_extra_keys")) or (
        stage_cls.legacy_schema is not None and not schema["types"]
    )
    built = (
        types,
        frozenset(schema["required"]),
        dict(schema.get("defaults") or {}),
        descriptions,
        extra,
    )
    _CONFIG_TYPES[stage_cls] = built
    return built


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
        has_written = key in written_json
        default = written_json[key] if has_written else model_defaults.get(key)
        has_default = has_written or key in model_defaults
        try:
            fields[key] = _field(
                config_type,
                required=key in required,
                default=default,
                has_default=has_default,
                description=descriptions.get(key),
            )
        except (dg.DagsterInvalidConfigError, dg.DagsterInvalidDefinitionError):
            # e.g. "${params.lr}" written where a float goes: keep the value, loosen the type.
            fields[key] = _field(
                dg.Any,
                required=key in required,
                default=default,
                has_default=has_default,
                description=descriptions.get(key),
            )
    for key in written_json:
        if key not in fields:
            # Unknown keys stay visible; the stage's own validation reports them when the op starts.
            fields[key] = dg.Field(dg.Any, is_required=False, default_value=written_json[key])
    return dg.Permissive(fields) if extra else dg.Shape(fields)
