"""``crucible model``: the registered model of an experiment file on its MLflow store: list its
versions with their gate decisions, move the champion to a canary that passed, roll an alias
back to the version it held before."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from crucible_dagster.cli.terminal import error_line, terminal_safe
from crucible_dagster.cli.validate import load_or_report
from crucible_dagster.experiment.ir.lifecycle import alias_name


def _store(args: argparse.Namespace) -> tuple[Any, str, str] | None:
    """(experiment, registered model name, alias) of the file, or None after saying why."""
    from crucible_dagster.lifecycle.register_stage import model_name_problems, registered_model

    experiment = load_or_report(args.path)
    if experiment is None:
        return None
    name = registered_model(experiment)
    problems = model_name_problems(experiment)
    if name is None or problems:
        why = problems[0][1] if problems else "its pipeline neither registers nor promotes a model"
        error_line(f"{args.path}: {why}")
        return None
    deployment = experiment.deployment
    alias = (
        args.alias if args.alias is not None else (deployment.alias if deployment else "champion")
    )
    try:
        alias_name(alias)
    except ValueError as exc:
        error_line(f"--alias: {exc}")
        return None
    return experiment, name, alias


@contextlib.contextmanager
def _registry(args: argparse.Namespace) -> Iterator[tuple[Any, str, str] | None]:
    """(the file's MLflow client, registered model name, alias), or None after saying why."""
    from crucible_dagster.lifecycle import mlflow_store
    from crucible_dagster.runtime.run_dirs import artifacts_root

    found = _store(args)
    if found is None:
        yield None
        return
    experiment, name, alias = found
    with mlflow_store.client(experiment, artifacts_root(None)) as (store, _):
        yield store, name, alias


def cmd_model_versions(args: argparse.Namespace) -> int:
    from crucible_dagster.lifecycle import promotion

    with _registry(args) as opened:
        if opened is None:
            return 1
        store, name, alias = opened
        holder = promotion.alias_holder(store, name, alias)
        versions = store.search_model_versions(f"name = '{name}'")
        for version in sorted(versions, key=lambda v: int(v.version)):
            tags = version.tags or {}
            decision = tags.get(f"{promotion.DECISION}decision", "-")
            mark = f" <- {alias}" if str(version.version) == holder else ""
            line = f"{name} v{version.version}: {decision} (run {tags.get('crucible.run_id', '?')}){mark}"
            print(terminal_safe(line), file=sys.stdout)
            message = tags.get(f"{promotion.DECISION}message")
            if message:
                print(f"    {terminal_safe(message)}", file=sys.stdout)
    return 0


def cmd_model_promote(args: argparse.Namespace) -> int:
    from crucible_dagster.lifecycle import promotion

    with _registry(args) as opened:
        if opened is None:
            return 1
        store, name, alias = opened
        if not (args.version or "").isdigit():
            error_line(f"--version: expected a version number (1, 2, 3), got {args.version!r}")
            return 1
        tags = store.get_model_version(name, args.version).tags or {}
        judged_for = tags.get(f"{promotion.DECISION}alias")
        if judged_for not in (alias, f"{alias}-canary"):
            error_line(f"{name} v{args.version}: its gate decision was for the alias "
                       f"{judged_for!r}, not {alias!r} or its canary: not moved")  # fmt: skip
            return 1
        if tags.get(f"{promotion.DECISION}decision") != "promoted":
            error_line(f"{name} v{args.version}: the gate did not pass it (decision "
                       f"{tags.get(f'{promotion.DECISION}decision', 'none')!r}): not moved")  # fmt: skip
            return 1
        promotion.move_alias(store, name, alias, args.version)
    print(f"{name}: {alias} -> v{args.version}", file=sys.stdout)
    return 0


def cmd_model_rollback(args: argparse.Namespace) -> int:
    from crucible_dagster.lifecycle import promotion

    with _registry(args) as opened:
        if opened is None:
            return 1
        store, name, alias = opened
        current, previous = promotion.rollback(store, name, alias)
    print(f"{name}: {alias} v{current} -> v{previous}", file=sys.stdout)
    return 0


def register(sub: Any) -> None:
    model = sub.add_parser("model", help="the registered model of an experiment (MLflow)")
    commands = model.add_subparsers(dest="model_command", required=True)
    for name, handler, text in (
        ("versions", cmd_model_versions, "list the versions and their gate decisions"),
        ("promote", cmd_model_promote, "move the alias to a version the gate passed (a canary)"),
        ("rollback", cmd_model_rollback, "move the alias back to the version it held before"),
    ):
        p = commands.add_parser(name, help=text)
        p.add_argument("path", help="the experiment file")
        p.add_argument("--alias", help="the alias (default: deployment.alias, else champion)")
        if name == "promote":
            p.add_argument("--version", help="the version number (required)")
        p.set_defaults(func=handler)
