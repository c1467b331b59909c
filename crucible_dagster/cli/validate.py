"""``crucible validate``: check experiment files without running them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crucible_dagster.cli.terminal import error_line, terminal_safe
from crucible_dagster.experiment.loading import EXPERIMENT_SUFFIXES, experiment_files
from crucible_dagster.runtime.preflight import check_file, check_files


def _expand(paths: Sequence[str]) -> dict[Path, Path | None]:
    """Each file to check, with the folder it was found in (None: named by itself)."""
    files: dict[Path, Path | None] = {}
    for raw in paths:
        path = Path(raw)
        # a folder is searched; a folder named like an experiment file is a mistake, reported
        folder = path.is_dir() and path.suffix not in EXPERIMENT_SUFFIXES
        files.update(dict.fromkeys(experiment_files(path), path) if folder else {path: None})
    return files


def cmd_validate(args: argparse.Namespace) -> int:
    found = _expand(args.paths)
    files = list(found)
    if not files:
        error_line("no experiment files found")
        return 1
    bad = 0
    folders = {path: folder for path, folder in found.items() if folder is not None}
    for checked in check_files(files, folders=folders):
        for problem in sorted(checked.problems + checked.warnings, key=lambda p: p.line or 0):
            print(terminal_safe(str(problem)))
        bad += not checked.ok
    if not args.quiet:
        print(f"{len(files) - bad} valid, {bad} invalid", file=sys.stderr)
    return 1 if bad else 0


def load_or_report(path: str) -> Any:
    """The fully checked experiment, or None after printing every problem on stderr."""
    checked = check_file(path)
    for problem in checked.warnings + checked.problems:
        error_line(str(problem))
    return checked.experiment


def register(sub: Any) -> None:
    p = sub.add_parser("validate", help="check experiment files; exit 1 if any is invalid")
    p.add_argument("paths", nargs="+", help="files or folders")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_validate)
