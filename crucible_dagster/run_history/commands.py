"""``crucible runs list|show|compare`` and ``crucible accept``: an experiment's history from a shell."""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from crucible_dagster.common.jsonsafe import to_jsonable
from crucible_dagster.experiment.names import check_name
from crucible_dagster.run_history.baselines import AcceptError, accept
from crucible_dagster.run_history.runs import list_runs
from crucible_dagster.run_history.scores import read_scores
from crucible_dagster.runtime.run_record import (
    MANIFEST,
    RunDirectoryError,
    artifacts_root,
    check_run_id,
    read_manifest,
)


class RunNotFound(ValueError):
    pass


def find_run(run: str) -> Path:
    """A run directory from its path or its run id (searched under the artifacts root)."""
    path = Path(run)
    if (path / MANIFEST).is_file():
        return path
    root = artifacts_root()
    try:  # a run id, never a pattern: '*' or '..' must not pick some run
        check_run_id(run)
    except RunDirectoryError:
        raise RunNotFound(
            f"no run {run!r}: expected a run directory or a run id under {root}"
        ) from None
    found = [p.parent for p in root.glob(f"*/{run}/{MANIFEST}") if p.parent.name == run]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise RunNotFound(
            f"run id {run!r} names runs of several experiments: give the run directory"
        )
    raise RunNotFound(f"no run {run!r}: expected a run directory or a run id under {root}")


def _since(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date like 2026-12-01, got {value!r}"
        ) from None


def _experiment_id(value: str) -> str:
    try:
        return check_name(value, "experiment id")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_runs_list(args: argparse.Namespace) -> int:
    rows = list_runs(args.experiment, since=args.since, status=args.status)
    if args.json:
        print(json.dumps([to_jsonable(r.to_dict()) for r in rows], indent=2))
        return 0
    if not rows:
        print(f"no runs of {args.experiment} under {artifacts_root()}", file=sys.stderr)
        return 0
    for row in rows:
        headline = ", ".join(f"{k}={v:.4g}" for k, v in row.headline.items())
        marks = " [accepted]" if row.accepted else ""
        where = "" if row.recorded_in == "run directory only" else f" ({row.recorded_in})"
        print(
            f"{row.run_id}  {row.started_at or '-'}  {row.status}  {row.orchestrator or '-'}"
            f"{where}{marks}  {headline}"
        )
    return 0


def cmd_runs_show(args: argparse.Namespace) -> int:
    run_dir = find_run(args.run)
    manifest = read_manifest(run_dir)
    gate = (manifest.get("metrics") or {}).get("regression_gate")
    summary: dict[str, Any] = {
        key: manifest.get(key)
        for key in (
            "experiment_id",
            "run_id",
            "status",
            "orchestrator",
            "started_at",
            "ended_at",
            "seed",
        )
    }
    summary["stages"] = {k: v.get("status") for k, v in (manifest.get("stages") or {}).items()}
    summary["quality_targets"] = (manifest.get("metrics") or {}).get("quality_targets")
    summary["regression_gate"] = gate
    summary["run_dir"] = str(run_dir)
    print(json.dumps(to_jsonable(summary), indent=2))
    return 0


def cmd_runs_compare(args: argparse.Namespace) -> int:
    from crucible_dagster.runtime.run_diff import diff_manifests, format_change

    a_dir, b_dir = find_run(args.run_a), find_run(args.run_b)
    a, b = read_manifest(a_dir), read_manifest(b_dir)
    print("== manifest differences")
    changes = diff_manifests(a, b)
    for change in changes:
        print(format_change(*change))
    if not changes:
        print("no differences")
    print("== paired comparison on the shared units (run_b - run_a)")
    scores_a, scores_b = read_scores(a_dir), read_scores(b_dir)
    if scores_a is None or scores_b is None:
        print("no per-unit scores in one of the runs (the bench stage keeps them)")
        return 0
    for group in sorted(set(scores_a["group"]) & set(scores_b["group"])):
        print(_paired_line(group, scores_a, scores_b, a, b))
    return 0


def _paired_line(group: str, scores_a: Any, scores_b: Any, a: dict, b: dict) -> str:
    from crucible_dagster.bench.compare import (
        ComparisonSettings,
        choose_pairwise_test,
        run_pairwise,
    )
    from crucible_dagster.run_history.scores import units_of

    here, there = units_of(scores_b, group), units_of(scores_a, group)
    shared = sorted(set(here) & set(there))
    if a.get("seed") != b.get("seed"):
        return f"{group}: not compared: the runs used different seeds (different folds or samples)"
    if len(shared) < 2:
        return f"{group}: not compared: {len(shared)} shared units"
    import numpy as np

    x, y = np.array([here[u] for u in shared]), np.array([there[u] for u in shared])
    settings = ComparisonSettings(design="paired")
    decisions: list[Any] = []
    test = choose_pairwise_test("run_b", "run_a", x, y, settings, decisions)
    result = run_pairwise(test, x, y, settings)
    low, high = result.ci or (math.nan, math.nan)
    why = decisions[-1].reason if decisions else ""
    tail = f" ({result.reason})" if result.reason else ""
    return (
        f"{group}: difference {float(np.mean(x - y)):.4g}, 95% CI [{low:.4g}, {high:.4g}], "
        f"p = {result.p_value:.3g}, {test} on {len(shared)} units: {why}{tail}"
    )


def cmd_accept(args: argparse.Namespace) -> int:
    try:
        entry = accept(find_run(args.run), args.note)
    except AcceptError as exc:
        print(f"crucible: {exc}", file=sys.stderr)
        return 1
    print(f"run {entry['run_id']} is now the accepted baseline of {entry['experiment_id']}")
    return 0


def add_commands(sub: Any) -> None:
    runs = sub.add_parser("runs", help="an experiment's run history")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True)
    p = runs_sub.add_parser("list", help="one line per run of an experiment")
    p.add_argument("experiment", type=_experiment_id)
    p.add_argument("--since", type=_since, help="runs started on or after this date")
    p.add_argument("--status", help="completed, failed, interrupted, running, or a Dagster status")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs_list)
    p = runs_sub.add_parser("show", help="one run: status, stages, targets, regression gate")
    p.add_argument("run", help="a run directory or a run id")
    p.set_defaults(func=cmd_runs_show)
    p = runs_sub.add_parser("compare", help="manifest diff and a paired test on shared units")
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.set_defaults(func=cmd_runs_compare)
    p = sub.add_parser("accept", help="mark a completed run as its experiment's baseline")
    p.add_argument("run", help="a run directory or a run id")
    p.add_argument("--note")
    p.set_defaults(func=cmd_accept)
