"""Accepted baselines: ``<artifacts>/<experiment>/baselines.jsonl``, one line per acceptance.

The file is appended to, never rewritten: the last line names the current baseline, and the
earlier ones stay as the record of who accepted what and why.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crucible_dagster.runtime.run_record import read_manifest

BASELINES = "baselines.jsonl"


class AcceptError(ValueError):
    """A run that cannot become the baseline (not completed, not a run)."""


def accept(
    run_dir: str | Path, note: str | None = None, *, by: str | None = None
) -> dict[str, Any]:
    """Mark a completed run as its experiment's accepted baseline; returns the record written."""
    run_dir = Path(run_dir)
    try:
        manifest = read_manifest(run_dir)
    except ValueError as exc:
        raise AcceptError(f"{run_dir}: not a run directory ({exc})") from None
    if manifest.get("status") != "completed":
        raise AcceptError(
            f"run {manifest['run_id']} is {manifest.get('status')!r}: only a completed run can "
            "be the baseline"
        )
    entry = {
        "run_id": manifest["run_id"],
        "experiment_id": manifest["experiment_id"],
        "accepted_at": datetime.now(UTC).isoformat(),
        "note": note,
        "by": by or os.environ.get("USER") or "unknown",
    }
    line = json.dumps(entry, sort_keys=True) + "\n"
    with (run_dir.parent / BASELINES).open("a", encoding="utf-8") as handle:
        handle.write(line)  # one write: concurrent acceptances never interleave a line
    return entry


def acceptances(experiment_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(experiment_dir) / BASELINES
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn line (a killed writer) is skipped, never fatal
        if isinstance(entry, dict) and isinstance(entry.get("run_id"), str):
            out.append(entry)
    return out


def accepted_run(experiment_dir: str | Path) -> str | None:
    """The run id of the current accepted baseline, or None."""
    found = acceptances(experiment_dir)
    return found[-1]["run_id"] if found else None
