"""The original's options validator over type specs, with its message templates (Python ``repr``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from crucible_dagster.experiment.option_schema import as_type_spec, function_arity, normalize_schema


def _check(key: str, value: Any, spec: Any) -> list[str]:
    spec = as_type_spec(spec)
    v = repr(value)
    if isinstance(spec, str):
        ok = {
            "string": lambda: isinstance(value, str),
            "integer": lambda: isinstance(value, int) and not isinstance(value, bool),
            "float": lambda: isinstance(value, float),
            "boolean": lambda: isinstance(value, bool),
            "atom": lambda: value is None or isinstance(value, str | bool),
            "map": lambda: isinstance(value, Mapping),
            "list": lambda: isinstance(value, list),
            "module": lambda: isinstance(value, str),
            "any": lambda: True,
        }.get(spec)
        if ok is None:
            return [f"{key}: unknown type spec {spec!r}"]
        if ok():
            return []
        noun = "module (atom)" if spec == "module" else spec
        return [f"{key}: expected {noun}, got {v}"]
    if not isinstance(spec, tuple) or not spec:
        return [f"{key}: unknown type spec {spec!r}"]
    kind, *rest = spec
    if kind == "struct" and len(rest) == 1:
        cls = rest[0]
        if isinstance(cls, type) and type(value) is cls:
            return []
        name = cls.__name__ if isinstance(cls, type) else str(cls)
        return [f"{key}: expected {name} instance, got {v}"]
    if kind == "enum" and len(rest) == 1:
        values = list(rest[0])
        return [] if value in values else [f"{key}: expected one of {values!r}, got {v}"]
    if kind == "list" and len(rest) == 1:
        if not isinstance(value, list):
            return [f"{key}: expected list, got {v}"]
        return [f"{key}[{i}]: {m}" for i, item in enumerate(value) for m in _inner(item, rest[0])]
    if kind == "map" and len(rest) == 2:
        if not isinstance(value, Mapping):
            return [f"{key}: expected map, got {v}"]
        errors = []
        for k, item in value.items():
            errors += [f"{key} key: {m}" for m in _inner(k, rest[0])]
            errors += [f"{key}[{k!r}]: {m}" for m in _inner(item, rest[1])]
        return errors
    if kind == "function" and len(rest) == 1:
        if not callable(value):
            return [f"{key}: expected function with arity {rest[0]}, got {v}"]
        arity = function_arity(value)
        if arity is not None and arity != rest[0]:
            return [f"{key}: expected function with arity {rest[0]}, got arity {arity}"]
        return []
    if kind == "union" and len(rest) == 1:
        if any(not _check(key, value, s) for s in rest[0]):
            return []
        return [
            f"{key}: value {v} doesn't match any type in union {[_display(s) for s in rest[0]]!r}"
        ]
    if kind == "tuple" and len(rest) == 1:
        specs = list(rest[0])
        if not isinstance(value, tuple | list):
            return [f"{key}: expected tuple of size {len(specs)}, got {v}"]
        if len(value) != len(specs):
            return [f"{key}: expected tuple of size {len(specs)}, got size {len(value)}"]
        return [
            f"{key}[{i}]: {m}"
            for i, (item, s) in enumerate(zip(value, specs, strict=True))
            for m in _inner(item, s)
        ]
    return [f"{key}: unknown type spec {spec!r}"]


def _display(spec: Any) -> Any:
    spec = as_type_spec(spec)
    return spec if isinstance(spec, str) else tuple(spec)


def _inner(value: Any, spec: Any) -> list[str]:
    return [m.removeprefix("value: ") for m in _check("value", value, spec)]


def check_legacy_options(
    options: Mapping[str, Any] | Sequence[tuple[str, Any]] | None, schema: Mapping[str, Any]
) -> list[str]:
    """Errors for ``options`` against a (possibly legacy) schema; ``[]`` means valid.

    Required keys first (in the schema's order), then type errors in sorted key order.
    Unknown keys are reported only when ``strict_keys`` is set (see ``Stage.check_legacy_options``).
    """
    canonical = normalize_schema(schema)
    opts: dict[str, Any] = dict(options or {})
    errors = [
        f"missing required option: {k}" for k in canonical.get("required", []) if k not in opts
    ]
    types_ = canonical.get("types", {})
    for key in sorted(opts, key=str):
        if key in types_:
            errors += _check(str(key), opts[key], types_[key])
    return errors


def unknown_keys(options: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    canonical = normalize_schema(schema)
    known = (
        set(canonical.get("required", []))
        | set(canonical.get("optional", []))
        | set(canonical.get("types", {}))
    )
    return sorted(str(k) for k in options if k not in known)
