"""``crucible diff``: what differs between two runs, read as untrusted records."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from crucible_dagster.cli.terminal import error_line


def cmd_diff(args: argparse.Namespace) -> int:
    from crucible_dagster.run_history.records import RecordError, read_run
    from crucible_dagster.runtime.run_diff import diff_manifests, format_change
    from crucible_dagster.runtime.run_record import MANIFEST, stale_note

    manifests = []
    for path in (Path(args.run_a), Path(args.run_b)):
        # the record is read as untrusted input: typed, capped, and matching its folder
        run_dir = path.parent if path.name == MANIFEST and not path.is_dir() else path
        try:
            manifests.append(read_run(run_dir).raw)
        except (OSError, ValueError) as exc:
            message = str(exc) if isinstance(exc, RecordError) else f"{path}: {exc}"
            error_line(f"expected a run directory or its manifest.json: {message}")
            return 1
        note = stale_note(manifests[-1])
        if note:
            error_line(f"{path}: {note}")
    changes = diff_manifests(*manifests)
    for change in changes:
        print(format_change(*change))
    if not changes:
        print("no differences", file=sys.stderr)
    return 1 if changes else 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "diff", help="what differs between two runs (run directories or manifest.json files)"
    )
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.set_defaults(func=cmd_diff)
