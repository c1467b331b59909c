"""``crucible stages`` and ``crucible schema``: what stages and experiment files accept."""

from __future__ import annotations

import argparse
import json
from typing import Any

from crucible_dagster.cli.terminal import error_line
from crucible_dagster.experiment.loading import experiment_json_schema
from crucible_dagster.experiment.option_schema import schema_to_json
from crucible_dagster.runtime.registry import Registry, StageResolutionError


def _format_type(spec: Any) -> str:
    return json.dumps(spec) if not isinstance(spec, str) else spec


def cmd_stages(args: argparse.Namespace) -> int:
    registry = Registry.default()
    if args.name:
        return _show_stage(registry, args)
    return _list_stages(registry, args)


def _show_stage(registry: Registry, args: argparse.Namespace) -> int:
    """One stage's schema: as JSON, or as the original's text listing."""
    try:
        cls = registry.resolve(args.name)
    except StageResolutionError as exc:
        error_line(f"Unknown stage: {args.name}: {exc}")
        return 1
    schema = schema_to_json(cls.describe())
    if args.json:
        print(
            json.dumps(
                [{"name": args.name, "module": cls.qualified_name(), "schema": schema}],
                indent=2,
            )
        )
        return 0
    print(f"Stage: {args.name}\nModule: {cls.qualified_name()}")
    for key in ("version", "__schema_version__"):
        if schema.get(key):
            print(f"{'Version' if key == 'version' else 'Schema Version'}: {schema[key]}")
    print(f"Description: {schema['description']}")
    _print_options(schema)
    if schema.get("__extensions__"):
        print("\nExtensions:")
        print(json.dumps(schema["__extensions__"], indent=2))
    return 0


def _print_options(schema: dict[str, Any]) -> None:
    defaults = schema.get("defaults", {})
    for title, keys in (
        ("Required options", schema["required"]),
        ("Optional options", schema["optional"]),
    ):
        print(f"\n{title}:")
        if not keys:
            print("  (none)")
        for key in keys:
            spec = schema["types"].get(key)
            line = f"  {key:<18} {_format_type(spec) if spec is not None else '(unspecified)'}"
            if key in defaults:
                line += f" (default: {json.dumps(defaults[key])})"
            print(line)


def _list_stages(registry: Registry, args: argparse.Namespace) -> int:
    rows = [{**row, "schema": schema_to_json(row["schema"])} for row in registry.describe_all()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(
            "No stages registered. Install a package that provides the 'crucible_dagster.stages' entry point."
        )
        return 0
    print("Available Stages:")
    for row in rows:
        schema = row["schema"]
        print(f"\n{row['name']} ({row['module']})")
        print(f"  Description: {schema['description']}")
        print(f"  Required: {', '.join(schema['required']) or '(none)'}")
        print(f"  Optional: {', '.join(schema['optional']) or '(none)'}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(experiment_json_schema(), indent=2))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("stages", help="list registered stages or show one schema")
    p.add_argument("--name", "-n")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stages)


def register_schema(sub: Any) -> None:
    p = sub.add_parser("schema", help="print the JSON Schema of experiment files")
    p.set_defaults(func=cmd_schema)
