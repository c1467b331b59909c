"""``crucible runs list|show|compare`` and ``crucible accept``: an experiment's history from a shell."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from crucible_dagster.cli.errors import RunNotFound
from crucible_dagster.common.isotime import parse_datetime
from crucible_dagster.common.jsonsafe import to_jsonable
from crucible_dagster.experiment.names import check_name
from crucible_dagster.run_history.baselines import AcceptError, accept
from crucible_dagster.run_history.records import (
    RecordError,
    current_baseline,
    read_run,
    terminal_safe,
)
from crucible_dagster.run_history.runs import STATUSES, list_runs
from crucible_dagster.run_history.scores import read_scores
from crucible_dagster.runtime.run_record import (
    MANIFEST,
    RunDirectoryError,
    artifacts_root,
    check_run_id,
)


def find_run(run: str) -> Path:
    """A run directory from its path or its run id (searched under the artifacts root)."""
    path = Path(run)
    if os.path.lexists(path / MANIFEST):
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
        return parse_datetime(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date like 2026-12-01, got {value!r}"
        ) from None


def _experiment_id(value: str) -> str:
    try:
        return check_name(value, "experiment id")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _say(text: str, *, err: bool = False) -> None:
    """Print a line built from records: control characters escaped, never interpreted."""
    print(terminal_safe(text), file=sys.stderr if err else sys.stdout)


def _refuse(exc: Exception) -> int:
    _say(f"crucible: {exc}", err=True)
    return 1


def cmd_runs_list(args: argparse.Namespace) -> int:
    rows = list_runs(args.experiment, since=args.since, status=args.status)
    try:
        current_baseline(artifacts_root() / args.experiment)
    except RecordError as exc:
        _say(f"crucible: no run is marked accepted: {exc}", err=True)
    if args.json:
        print(json.dumps([to_jsonable(r.to_dict()) for r in rows], indent=2))
        return 0
    if not rows:
        _say(f"no runs of {args.experiment} under {artifacts_root()}", err=True)
        return 0
    for row in rows:
        if row.status == "unreadable":
            _say(f"{row.run_id}  unreadable  {row.reason}")
            continue
        headline = ", ".join(f"{k}={v:.4g}" for k, v in row.headline.items())
        marks = " [accepted]" if row.accepted else ""
        where = "" if row.recorded_in == "run directory only" else f" ({row.recorded_in})"
        _say(
            f"{row.run_id}  {row.started_at or '-'}  {row.status}  {row.orchestrator or '-'}"
            f"{where}{marks}  {headline}"
        )
    return 0


def cmd_runs_show(args: argparse.Namespace) -> int:
    try:
        read = read_run(find_run(args.run))
    except RecordError as exc:
        return _refuse(exc)
    manifest = read.manifest
    summary: dict[str, Any] = {
        "experiment_id": manifest.experiment_id,
        "run_id": manifest.run_id,
        "status": manifest.status,
        "orchestrator": manifest.orchestrator,
        "started_at": manifest.started_at,
        "ended_at": manifest.ended_at,
        "seed": manifest.seed,
        "stages": {k: v.status for k, v in manifest.stages.items()},
        "quality_targets": manifest.metrics.get("quality_targets"),
        "regression_gate": manifest.metrics.get("regression_gate"),
        "run_dir": str(read.run_dir),
    }
    # json.dumps escapes every control character (ensure_ascii: every non-ASCII one too)
    print(json.dumps(to_jsonable(summary), indent=2))
    return 0


def cmd_runs_compare(args: argparse.Namespace) -> int:
    from crucible_dagster.runtime.run_diff import diff_manifests, format_change

    try:
        a, b = read_run(find_run(args.run_a)), read_run(find_run(args.run_b))
        scores_a, scores_b = read_scores(a.run_dir), read_scores(b.run_dir)
    except RecordError as exc:
        return _refuse(exc)
    print("== manifest differences")
    changes = diff_manifests(a.raw, b.raw)
    for change in changes:
        _say(format_change(*change))
    if not changes:
        print("no differences")
    print("== paired comparison on the shared units (run_b - run_a)")
    if scores_a is None or scores_b is None:
        print("no per-unit scores in one of the runs (the bench stage keeps them)")
        return 0
    for group in sorted(set(scores_a["group"]) & set(scores_b["group"])):
        _say(_paired_line(group, scores_a, scores_b, a.raw, b.raw))
    return 0


def _paired_line(group: str, scores_a: Any, scores_b: Any, a: dict, b: dict) -> str:
    from crucible_dagster.bench.pairwise import run_pairwise
    from crucible_dagster.bench.selection import choose_pairwise_test
    from crucible_dagster.bench.settings import ComparisonSettings
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
        entry = accept(find_run(args.run), args.note, note_field="--note")
    except AcceptError as exc:
        return _refuse(exc)
    _say(f"run {entry['run_id']} is now the accepted baseline of {entry['experiment_id']}")
    return 0


def register(sub: Any) -> None:
    runs = sub.add_parser("runs", help="an experiment's run history")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True)
    p = runs_sub.add_parser("list", help="one line per run of an experiment")
    p.add_argument("experiment", type=_experiment_id)
    p.add_argument("--since", type=_since, help="runs started on or after this date")
    p.add_argument(
        "--status",
        choices=STATUSES,
        help="only runs of this status (a run only Dagster knows is mapped: failure is failed)",
    )
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
