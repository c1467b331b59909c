"""The canonical stage schema of the original (name, description, required, optional, types, ...).

Stages declare options as pydantic models; ``describe_options`` derives the canonical
schema from them so tools that read schemas keep working. Hand-written legacy schemas
are normalised (``normalize_schema``) and checked (``validate_schema``) as the original does.

Type specs: primitives ``"string" "integer" "float" "boolean" "atom" "map" "list"
"module" "any"``; composites as tuples (lists are accepted from JSON/YAML):
``("struct", cls)``, ``("enum", [values])``, ``("list", inner)``, ``("map", key, value)``,
``("function", arity)``, ``("union", [specs])``, ``("tuple", [specs])``.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from crucible_dagster.common.jsonsafe import to_jsonable

PRIMITIVES = frozenset(
    {"string", "integer", "float", "boolean", "atom", "map", "list", "module", "any"}
)
CORE_KEYS = frozenset(
    {
        "__schema_version__",
        "name",
        "description",
        "required",
        "optional",
        "types",
        "defaults",
        "version",
        "__extensions__",
    }
)
SCHEMA_VERSION = "1.0.0"


def as_type_spec(spec: Any) -> Any:
    """JSON/YAML give lists where Python code writes tuples: ``["list", "integer"]`` -> tuple."""
    if (
        isinstance(spec, list)
        and spec
        and isinstance(spec[0], str)
        and spec[0]
        in {
            "struct",
            "enum",
            "list",
            "map",
            "function",
            "union",
            "tuple",
        }
    ):
        return tuple(spec)
    return spec


def valid_type_spec(spec: Any) -> bool:
    spec = as_type_spec(spec)
    if isinstance(spec, str):
        return spec in PRIMITIVES
    if not isinstance(spec, tuple) or not spec:
        return False
    kind, *rest = spec
    if kind == "struct":
        return len(rest) == 1 and isinstance(rest[0], type | str)
    if kind == "enum":
        return len(rest) == 1 and isinstance(rest[0], list | tuple)
    if kind == "list":
        return len(rest) == 1 and valid_type_spec(rest[0])
    if kind == "map":
        return len(rest) == 2 and all(valid_type_spec(s) for s in rest)
    if kind in ("union", "tuple"):
        return (
            len(rest) == 1
            and isinstance(rest[0], list | tuple)
            and all(valid_type_spec(s) for s in rest[0])
        )
    if kind == "function":
        return (
            len(rest) == 1
            and isinstance(rest[0], int)
            and not isinstance(rest[0], bool)
            and rest[0] >= 0
        )
    return False


def _is_name(value: Any) -> bool:
    return value is None or isinstance(value, str)


def validate_schema(schema: Any) -> list[str]:
    """The original's schema checks, in its order; an empty list means valid."""
    if not isinstance(schema, Mapping):
        return ["schema must be a map"]
    errors: list[str] = []
    if "name" not in schema or not _is_name(schema["name"]):
        errors.append("name is required and must be an atom")
    description = schema.get("description")
    if not isinstance(description, str) or not description:
        errors.append("description is required and must be a non-empty string")
    required, optional, types_ = schema.get("required"), schema.get("optional"), schema.get("types")
    for key, value in (("required", required), ("optional", optional)):
        if not isinstance(value, list):
            errors.append(f"{key} is required and must be a list")
        elif not all(isinstance(v, str) for v in value):
            errors.append(f"{key} must be a list of atoms")
    if not isinstance(types_, Mapping):
        errors.append("types is required and must be a map")
    else:
        invalid = [k for k, v in types_.items() if not valid_type_spec(v)]
        if invalid:
            errors.append(f"invalid type specs for keys: {invalid!r}")
    if isinstance(required, list) and isinstance(optional, list):
        overlap = [k for k in required if k in optional]
        if overlap:
            errors.append(f"keys overlap between required and optional: {overlap!r}")
    if isinstance(required, list) and isinstance(types_, Mapping):
        missing = [k for k in required if k not in types_]
        if missing:
            errors.append(f"required keys missing from types: {missing!r}")
    if "defaults" in schema:
        defaults = schema["defaults"]
        if not isinstance(defaults, Mapping):
            errors.append("defaults must be a map")
        else:
            allowed = optional if isinstance(optional, list) else []
            stray = [k for k in defaults if k not in allowed]
            if stray:
                errors.append(f"defaults keys must be in optional: {stray!r}")
    if "__schema_version__" in schema and not isinstance(schema["__schema_version__"], str):
        errors.append("__schema_version__ must be a string (semver format)")
    return errors


def normalize_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Legacy -> canonical: ``stage`` becomes ``name``; unknown keys move into ``__extensions__``."""
    out = dict(schema)
    if "stage" in out:
        out["name"] = str(out.pop("stage"))
    elif out.get("name") is not None:
        out["name"] = str(out["name"])
    out.setdefault("required", [])
    out.setdefault("optional", [])
    out.setdefault("types", {})
    out["types"] = (
        {k: as_type_spec(v) for k, v in out["types"].items()}
        if isinstance(out["types"], Mapping)
        else out["types"]
    )
    moved = {k: out.pop(k) for k in list(out) if k not in CORE_KEYS}
    if moved or "__extensions__" in schema:
        out["__extensions__"] = {**(schema.get("__extensions__") or {}), **moved}
    return out


# --- pydantic -> canonical ------------------------------------------------------------------


def annotation_to_spec(annotation: Any) -> Any:
    """The original's type spec closest to a Python annotation."""
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return annotation_to_spec(get_args(annotation)[0])
    if annotation is Any or annotation is object:
        return "any"
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return annotation_to_spec(members[0])
        return ("union", [annotation_to_spec(a) for a in members])
    if origin is Literal:
        return ("enum", list(get_args(annotation)))
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return ("enum", [m.value for m in annotation])
    if origin in (list, set, frozenset) or (
        origin is tuple and get_args(annotation)[-1:] == (Ellipsis,)
    ):
        args = get_args(annotation)
        return ("list", annotation_to_spec(args[0])) if args else "list"
    if origin is tuple:
        return ("tuple", [annotation_to_spec(a) for a in get_args(annotation)])
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        args = get_args(annotation)
        return ("map", annotation_to_spec(args[0]), annotation_to_spec(args[1])) if args else "map"
    if annotation is list:
        return "list"
    if (origin is not None and origin in (Callable, typing.Callable)) or annotation is Callable:
        args = get_args(annotation)
        arity = len(args[0]) if args and isinstance(args[0], list) else 0
        return ("function", arity)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return ("struct", annotation)
    simple = {str: "string", int: "integer", float: "float", bool: "boolean"}
    return simple.get(annotation, "any")


def field_default(info: Any) -> Any:
    if info.default is not PydanticUndefined:
        return info.default
    if info.default_factory is not None:
        try:
            return info.default_factory()
        except TypeError:
            return PydanticUndefined
    return PydanticUndefined


def describe_options(
    name: str, description: str, options_model: type[BaseModel], version: str | None = None
) -> dict[str, Any]:
    """Canonical schema of a stage whose options are a pydantic model."""
    fields = options_model.model_fields
    required = [n for n, f in fields.items() if f.is_required()]
    optional = [n for n, f in fields.items() if not f.is_required()]
    defaults = {}
    for n in optional:
        default = field_default(fields[n])
        if default is not PydanticUndefined and default is not None:
            defaults[n] = to_jsonable(default)
    schema: dict[str, Any] = {
        "__schema_version__": SCHEMA_VERSION,
        "name": name,
        "description": description,
        "required": required,
        "optional": optional,
        "types": {n: annotation_to_spec(f.annotation) for n, f in fields.items()},
    }
    if defaults:
        schema["defaults"] = defaults
    if version:
        schema["version"] = version
    notes = {n: f.description for n, f in fields.items() if f.description}
    extensions: dict[str, Any] = {}
    if notes:
        extensions["descriptions"] = notes
    if options_model.model_config.get("extra") == "allow":
        extensions["accepts_extra_keys"] = True
    if extensions:
        schema["__extensions__"] = extensions
    return schema


def spec_to_json(spec: Any) -> Any:
    """A type spec as plain JSON (tuples -> lists, classes -> qualified names)."""
    spec = as_type_spec(spec)
    if isinstance(spec, tuple):
        return [spec_to_json(s) for s in spec]
    if isinstance(spec, list):
        return [spec_to_json(s) for s in spec]
    if isinstance(spec, type):
        return f"{spec.__module__}:{spec.__qualname__}"
    if callable(spec):
        return repr(spec)
    return to_jsonable(spec)


def schema_to_json(schema: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(schema)
    out["types"] = {k: spec_to_json(v) for k, v in schema.get("types", {}).items()}
    return to_jsonable(out)


def function_arity(fn: Any) -> int | None:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
