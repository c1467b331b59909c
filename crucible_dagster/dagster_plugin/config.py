"""Stage options schema -> Dagster config schema, so the Launchpad shows typed, pre-filled fields.

Dagster only type-checks at submit; the op re-validates with the stage's own model
when it starts. Types Dagster cannot express (unions, tuples, functions, nested
models) fall back to a permissive ``Any`` field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from crucible_dagster.core.jsonsafe import to_jsonable
from crucible_dagster.core.schema import _as_spec, normalize_schema
from crucible_dagster.core.stage import Stage

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
    schema = normalize_schema(stage_cls.describe())
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


def _field(
    config_type: Any, *, required: bool, default: Any, has_default: bool, description: str | None
) -> dg.Field:
    if required and not has_default:
        return dg.Field(config_type, is_required=True, description=description)
    kwargs: dict[str, Any] = {"is_required": False, "description": description}
    if has_default:
        kwargs["default_value"] = default
    return dg.Field(dg.Noneable(config_type), **kwargs)


def options_config_schema(
    stage_cls: type[Stage], written: Mapping[str, Any]
) -> dg.Shape | dg.Permissive:
    """Config schema for one op: typed fields, defaults = the options written in the experiment file."""
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
