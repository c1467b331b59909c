"""The original's options validator over type specs, with its message templates (Python ``repr``).

Only a stage that declares ``legacy_schema`` (a hand-written schema in the original's format)
reaches this module: ``Stage.describe`` and ``Stage.parse_options`` import it for such a stage
alone, so stages with a pydantic ``Options`` model never load it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from crucible_dagster.experiment.option_schema import as_type_spec, function_arity, normalize_schema

_PRIMITIVE_CHECKS = {
    "string": lambda value: isinstance(value, str),
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "float": lambda value: isinstance(value, float),
    "boolean": lambda value: isinstance(value, bool),
    "atom": lambda value: value is None or isinstance(value, str | bool),
    "map": lambda value: isinstance(value, Mapping),
    "list": lambda value: isinstance(value, list),
    "module": lambda value: isinstance(value, str),
    "any": lambda value: True,
}


def _check(key: str, value: Any, spec: Any) -> list[str]:
    spec = as_type_spec(spec)
    if isinstance(spec, str):
        ok = _PRIMITIVE_CHECKS.get(spec)
        if ok is None:
            return [f"{key}: unknown type spec {spec!r}"]
        if ok(value):
            return []
        noun = "module (atom)" if spec == "module" else spec
        return [f"{key}: expected {noun}, got {value!r}"]
    if isinstance(spec, tuple) and spec:
        kind, *rest = spec
        check = _COMPOUND_CHECKS.get((kind, len(rest)))
        if check is not None:
            return check(key, value, *rest)
    return [f"{key}: unknown type spec {spec!r}"]


def _check_struct(key: str, value: Any, cls: Any) -> list[str]:
    if isinstance(cls, type) and type(value) is cls:
        return []
    name = cls.__name__ if isinstance(cls, type) else str(cls)
    return [f"{key}: expected {name} instance, got {value!r}"]


def _check_enum(key: str, value: Any, allowed: Any) -> list[str]:
    values = list(allowed)
    return [] if value in values else [f"{key}: expected one of {values!r}, got {value!r}"]


def _check_list(key: str, value: Any, item_spec: Any) -> list[str]:
    if not isinstance(value, list):
        return [f"{key}: expected list, got {value!r}"]
    return [f"{key}[{i}]: {m}" for i, item in enumerate(value) for m in _inner(item, item_spec)]


def _check_map(key: str, value: Any, key_spec: Any, value_spec: Any) -> list[str]:
    if not isinstance(value, Mapping):
        return [f"{key}: expected map, got {value!r}"]
    errors = []
    for k, item in value.items():
        errors += [f"{key} key: {m}" for m in _inner(k, key_spec)]
        errors += [f"{key}[{k!r}]: {m}" for m in _inner(item, value_spec)]
    return errors


def _check_function(key: str, value: Any, expected: Any) -> list[str]:
    if not callable(value):
        return [f"{key}: expected function with arity {expected}, got {value!r}"]
    arity = function_arity(value)
    if arity is not None and arity != expected:
        return [f"{key}: expected function with arity {expected}, got arity {arity}"]
    return []


def _check_union(key: str, value: Any, specs: Any) -> list[str]:
    if any(not _check(key, value, s) for s in specs):
        return []
    shown = [_display(s) for s in specs]
    return [f"{key}: value {value!r} doesn't match any type in union {shown!r}"]


def _check_tuple(key: str, value: Any, item_specs: Any) -> list[str]:
    specs = list(item_specs)
    if not isinstance(value, tuple | list):
        return [f"{key}: expected tuple of size {len(specs)}, got {value!r}"]
    if len(value) != len(specs):
        return [f"{key}: expected tuple of size {len(specs)}, got size {len(value)}"]
    return [
        f"{key}[{i}]: {m}"
        for i, (item, s) in enumerate(zip(value, specs, strict=True))
        for m in _inner(item, s)
    ]


_COMPOUND_CHECKS: dict[tuple[str, int], Callable[..., list[str]]] = {
    ("struct", 1): _check_struct,
    ("enum", 1): _check_enum,
    ("list", 1): _check_list,
    ("map", 2): _check_map,
    ("function", 1): _check_function,
    ("union", 1): _check_union,
    ("tuple", 1): _check_tuple,
}


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
    Unknown keys are not reported here (``parse_legacy_options`` adds them).
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


def describe_legacy(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``Stage.describe()`` for a legacy stage: its hand-written schema, normalised."""
    return normalize_schema(schema)


def parse_legacy_options(
    raw: Mapping[str, Any], schema: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """A legacy stage's options as a plain dict, with every problem as a ``key: ...`` line.

    Unknown keys are errors when the schema declares types, unless its extensions say
    ``accepts_extra_keys``.
    """
    errors = check_legacy_options(raw, schema)
    canonical = normalize_schema(schema)
    accepts_extra = (canonical.get("__extensions__") or {}).get("accepts_extra_keys")
    if canonical.get("types") and not accepts_extra:
        errors += [f"{k}: unknown option" for k in unknown_keys(raw, schema)]
    return dict(raw), errors
