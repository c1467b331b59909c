"""``crucible telemetry RUN|EXPERIMENT``: request metrics over a window, a comparison, an export."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from crucible_dagster.cli.errors import UsageError, flag_value
from crucible_dagster.cli.runs import find_run
from crucible_dagster.cli.terminal import terminal_safe
from crucible_dagster.common.isotime import parse_datetime
from crucible_dagster.common.jsonsafe import to_jsonable
from crucible_dagster.experiment.names import check_name
from crucible_dagster.runtime.run_record import TELEMETRY, artifacts_root
from crucible_dagster.telemetry.export import FORMATS, export_events
from crucible_dagster.telemetry.metrics import (
    compare_requests,
    events_frame,
    parse_duration,
    request_metrics,
    within,
)


def telemetry_files(target: str) -> tuple[list[Path], list[str]]:
    """A run's ``telemetry.jsonl`` (with its sweep trials'), from a run directory or run id, or
    every run's of an experiment id under the artifacts root; and why any was not read (a
    symlink, not a regular file), so "none found" is never said of a file that is there."""
    path = Path(target)
    if not path.is_dir():
        root = artifacts_root()
        try:
            experiment = root / check_name(target, "experiment id")
        except ValueError:
            experiment = None
        if experiment is not None and experiment.is_dir() and not experiment.is_symlink():
            return _files_of(experiment.glob("*"))
    return _files_of([find_run(target)])


def _files_of(run_dirs: Any) -> tuple[list[Path], list[str]]:
    found: list[Path] = []
    skipped: list[str] = []
    for run_dir in sorted(run_dirs):
        if run_dir.is_symlink():
            skipped.append(f"{run_dir}: a symlinked run folder, not read")
            continue
        if not run_dir.is_dir():
            continue
        candidates = [run_dir / TELEMETRY, *sorted(run_dir.glob(f"trials/*/{TELEMETRY}"))]
        for candidate in candidates:
            if candidate.is_symlink() or (os.path.lexists(candidate) and not candidate.is_file()):
                kind = "a symlink" if candidate.is_symlink() else "not a regular file"
                skipped.append(f"{candidate}: {kind}, not read")
            elif candidate.is_file():
                found.append(candidate)
    return found, skipped


def _time(text: str) -> datetime:
    expected = (
        f"expected an ISO 8601 time with its UTC offset (2026-12-03T10:00+00:00), got {text!r}"
    )
    try:
        value = parse_datetime(text)
    except ValueError:
        raise ValueError(expected) from None
    if value.tzinfo is None:
        raise ValueError(expected)
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError
    return value


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ValueError(str(exc).removeprefix("--last: ")) from None


def _window(args: argparse.Namespace, target: str) -> Any:
    files, skipped = telemetry_files(target)
    for note in skipped:
        print(terminal_safe(f"skipped: {note}"), file=sys.stderr)
    if not files:
        raise UsageError(f"{target}: no readable telemetry.jsonl found")
    frame, problems = events_frame(files)
    for problem in problems:
        print(terminal_safe(f"skipped: {problem}"), file=sys.stderr)
    return within(frame, last=args.last, last_n=args.last_n, since=args.since, until=args.until)


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def _check_flags(args: argparse.Namespace) -> None:
    """Flags that mean nothing alone, or nothing at all, are refused, not ignored."""
    if args.out is not None and not args.export:
        raise UsageError("--out: given without --export csv|jsonl|parquet; nothing to write")
    if args.vs is not None and not args.vs.strip():
        raise UsageError("--vs: expected a run directory, run id or experiment id, got ''")
    if args.metric is not None and args.vs is None:
        raise UsageError("--metric: compares with --vs; give --vs RUN_OR_EXPERIMENT")


def cmd_telemetry(args: argparse.Namespace) -> int:
    _check_flags(args)
    frame = _window(args, args.target)
    by = [b for b in args.by.split(",") if b] if args.by else []
    if args.export:
        if not args.out:
            raise UsageError("--export needs --out PATH (a new file)")
        written = export_events(frame, args.export, args.out)
        print(terminal_safe(f"wrote {len(frame)} events to {written}"))
        return 0
    if args.vs:
        result = compare_requests(frame, _window(args, args.vs), args.metric or "latency_ms")
        if args.json:
            print(json.dumps(to_jsonable(result), sort_keys=True))
        else:
            for key, value in result.items():
                print(terminal_safe(f"{key}: {_shown(value)}"))
        return 0
    table = request_metrics(frame, by)
    if args.json:
        print(json.dumps(to_jsonable(table.to_dict(orient="records")), sort_keys=True))
        return 0
    if table.empty:
        print(terminal_safe(f"{args.target}: no request events in the window"))
        return 0
    for record in table.to_dict(orient="records"):
        print(terminal_safe(", ".join(f"{k}={_shown(v)}" for k, v in record.items())))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "telemetry", help="request latency, cost, reliability and tokens from telemetry.jsonl"
    )
    p.add_argument("target", help="a run directory, a run id, or an experiment id (all its runs)")
    p.add_argument("--by", default="variant", help="event fields to group by, comma-separated")
    p.add_argument(
        "--last",
        type=lambda v: flag_value(v, _duration),
        help="only the last span before the newest event: 90s, 15m, 1h, 2d",
    )
    p.add_argument(
        "--last-n",
        type=lambda v: flag_value(v, _count, "a positive count"),
        help="only the newest N requests",
    )
    p.add_argument("--since", type=lambda v: flag_value(v, _time), help="ISO time with offset")
    p.add_argument("--until", type=lambda v: flag_value(v, _time), help="ISO time with offset")
    p.add_argument("--vs", help="compare with another run or experiment (paired on samples)")
    p.add_argument(
        "--metric",
        choices=("latency_ms", "cost", "prompt_tokens", "completion_tokens"),
        help="what --vs compares (default latency_ms)",
    )
    p.add_argument("--export", choices=FORMATS, help="write the window's events to --out")
    p.add_argument("--out", help="the export's file (created; never overwritten)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_telemetry)
