"""Acceptance scenarios 1-5: the options validator, schema checks and the normalizer."""

from __future__ import annotations

from crucible_dagster.experiment.legacy_options import check_legacy_options
from crucible_dagster.experiment.option_schema import normalize_schema, validate_schema
from crucible_dagster.runtime.registry import Registry

SCHEMA = {
    "name": "test",
    "description": "Test",
    "required": ["input"],
    "optional": [],
    "types": {"input": "string"},
}


def test_scenario_1_missing_required() -> None:
    assert check_legacy_options({}, SCHEMA) == ["missing required option: input"]
    assert check_legacy_options({"input": "hello"}, SCHEMA) == []
    assert check_legacy_options([("input", "hello")], SCHEMA) == []
    assert check_legacy_options(None, {**SCHEMA, "required": [], "types": {}}) == []


def _one(spec: object, value: object) -> list[str]:
    return check_legacy_options(
        {"x": value},
        {"name": "t", "description": "T", "required": [], "optional": ["x"], "types": {"x": spec}},
    )


def test_scenario_2_type_errors() -> None:
    assert _one("integer", 3.14) == ["x: expected integer, got 3.14"]
    assert _one(("enum", ["a", "b", "c"]), "d") == ["x: expected one of ['a', 'b', 'c'], got 'd'"]
    assert _one(("list", "integer"), [1, "two", 3]) == ["x[1]: expected integer, got 'two'"]
    assert _one(("tuple", ["atom", "string"]), ("ok",)) == [
        "x: expected tuple of size 2, got size 1"
    ]
    assert _one(("function", 1), lambda a, b: a) == [
        "x: expected function with arity 1, got arity 2"
    ]
    assert _one(("union", ["string", "integer"]), 3.14) == [
        "x: value 3.14 doesn't match any type in union ['string', 'integer']"
    ]
    assert _one("atom", None) == []
    assert check_legacy_options({"other": 1}, SCHEMA | {"required": []}) == []


def test_more_type_specs() -> None:
    assert _one("float", 42) == ["x: expected float, got 42"]
    assert _one("boolean", "yes") == ["x: expected boolean, got 'yes'"]
    assert _one("integer", True) == ["x: expected integer, got True"]
    assert _one(("map", "string", "integer"), {"a": 1, "b": "2"}) == [
        "x['b']: expected integer, got '2'"
    ]
    assert _one(("map", "string", "integer"), {1: 1}) == ["x key: expected string, got 1"]
    assert _one(("map", "string", "integer"), []) == ["x: expected map, got []"]
    assert _one(("function", 0), 5) == ["x: expected function with arity 0, got 5"]
    assert _one(("tuple", ["integer", "string"]), (1, 2)) == ["x[1]: expected string, got 2"]
    assert _one("module", 3) == ["x: expected module (atom), got 3"]
    assert _one(("struct", dict), {"a": 1}) == []
    assert _one(("struct", dict), [1]) == ["x: expected dict instance, got [1]"]
    assert _one("weird", 1) == ["x: unknown type spec 'weird'"]
    assert _one(["list", "integer"], [1, 2]) == []  # specs written as JSON lists


def test_errors_are_ordered_required_first_then_sorted_keys() -> None:
    schema = {
        "name": "t",
        "description": "T",
        "required": ["b", "a"],
        "optional": ["z", "y"],
        "types": {"a": "string", "b": "string", "z": "integer", "y": "integer"},
    }
    assert check_legacy_options({"z": "1", "y": "2"}, schema) == [
        "missing required option: b",
        "missing required option: a",
        "y: expected integer, got '2'",
        "z: expected integer, got '1'",
    ]


def test_scenario_3_legacy_schema() -> None:
    legacy = {
        "stage": "legacy_stage",
        "description": "Legacy format",
        "inputs": ["a", "b"],
        "outputs": ["c"],
    }
    assert check_legacy_options({"some_opt": "value"}, legacy) == []


def test_scenario_4_schema_validate() -> None:
    assert validate_schema({"description": "Missing name"}) == [
        "name is required and must be an atom",
        "required is required and must be a list",
        "optional is required and must be a list",
        "types is required and must be a map",
    ]
    errors = validate_schema(
        {
            "name": "t",
            "description": "A",
            "required": ["input"],
            "optional": ["input", "verbose"],
            "types": {},
        }
    )
    assert "keys overlap between required and optional: ['input']" in errors
    assert "required keys missing from types: ['input']" in errors
    assert validate_schema(
        {
            "name": "t",
            "description": "A",
            "required": [],
            "optional": ["verbose"],
            "types": {},
            "defaults": {"unknown_key": True},
        }
    ) == ["defaults keys must be in optional: ['unknown_key']"]
    assert validate_schema(
        {
            "name": "t",
            "description": "A",
            "required": [],
            "optional": [],
            "types": {},
            "__schema_version__": 1.0,
        }
    ) == ["__schema_version__ must be a string (semver format)"]
    assert validate_schema("nope") == ["schema must be a map"]
    assert validate_schema(
        {"name": "t", "description": "A", "required": [], "optional": [], "types": {"x": "bogus"}}
    ) == ["invalid type specs for keys: ['x']"]


def test_all_builtin_schemas_validate() -> None:
    registry = Registry.default()
    for name in ("validate", "data_checks", "guardrails", "report"):
        assert validate_schema(registry.resolve(name).describe()) == [], name


def test_scenario_5_normalizer() -> None:
    assert normalize_schema({"name": "test", "description": "Test"}) == {
        "name": "test",
        "description": "Test",
        "required": [],
        "optional": [],
        "types": {},
    }
    legacy = {
        "stage": "hedging",
        "description": "Request hedging stage",
        "inputs": ["x"],
        "outputs": ["y"],
        "config": {"strategy": "fixed"},
    }
    out = normalize_schema(legacy)
    assert out["name"] == "hedging"
    assert out["__extensions__"] == {
        "inputs": ["x"],
        "outputs": ["y"],
        "config": {"strategy": "fixed"},
    }
    assert (
        normalize_schema({"name": "t", "description": "d", "__extensions__": {}})["__extensions__"]
        == {}
    )


def test_describe_derived_from_options_model() -> None:
    schema = Registry.default().resolve("data_checks").describe()
    assert schema["name"] == "data_checks"
    assert schema["required"] == []
    assert schema["optional"] == ["required_fields", "fail_fast", "checker"]
    assert schema["types"]["required_fields"] == ("list", "string")
    assert schema["types"]["fail_fast"] == "boolean"
    assert schema["defaults"] == {"required_fields": ["input", "output"], "fail_fast": False}
    assert schema["__schema_version__"] == "1.0.0"
