"""Accepted baselines: ``<artifacts>/<experiment>/baselines.jsonl``, one line per acceptance.

The file is appended to, never rewritten: the last line names the current baseline, and the
earlier ones stay as the record of who accepted what and why.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from crucible_dagster.run_history.records import (
    BASELINES,
    MAX_TEXT,
    RecordError,
    current_baseline,
    read_acceptances,
    read_run,
)
from crucible_dagster.runtime.run_record import artifacts_root

__all__ = ["BASELINES", "AcceptError", "accept", "acceptances", "accepted_run"]


class AcceptError(ValueError):
    """A run that cannot become the baseline (not completed, not a run, not under the root)."""


def _own_run_dir(run_dir: Path, root: str | Path | None) -> Path:
    """``run_dir`` as ``<root>/<experiment>/<run_id>``, or AcceptError: a folder elsewhere (or
    reached through a symlink) would make ``accept`` write outside its experiment."""
    base = artifacts_root(root)
    where = Path(os.path.abspath(run_dir))
    if where.is_symlink() or where.parent.is_symlink() or where.resolve().parent.parent != base:
        raise AcceptError(
            f"{run_dir}: expected a run directory <artifacts root>/<experiment>/<run_id> under "
            f"{base}, found a folder elsewhere (or a symlink)"
        )
    return where.resolve()


def accept(
    run_dir: str | Path,
    note: str | None = None,
    *,
    by: str | None = None,
    root: str | Path | None = None,
    note_field: str = "note",
) -> dict[str, Any]:
    """Mark a completed run as its experiment's accepted baseline; returns the record written.

    Only a run under the artifacts root, whose manifest matches its folder and says
    ``completed``; only ``<root>/<experiment>/baselines.jsonl`` is written. ``note_field`` is
    how the caller's user typed the note (``--note``, or the Dagster job's config field)."""
    where = _own_run_dir(Path(run_dir), root)
    try:
        manifest = read_run(where).manifest
    except RecordError as exc:
        raise AcceptError(f"not a run that can be accepted: {exc}") from None
    if manifest.status != "completed":
        raise AcceptError(
            f"{where}: status: expected 'completed' (only a completed run can be the "
            f"baseline), found {manifest.status!r}"
        )
    if note is not None and len(note) > MAX_TEXT:
        raise AcceptError(
            f"{note_field}: expected at most {MAX_TEXT} characters, found {len(note)}"
        )
    entry = {
        "run_id": manifest.run_id,
        "experiment_id": manifest.experiment_id,
        "accepted_at": datetime.now(timezone.utc).isoformat(),
        "note": note,
        "by": (by or os.environ.get("USER") or "unknown")[:256],
    }
    _append_line(where.parent / BASELINES, json.dumps(entry, sort_keys=True) + "\n")
    return entry


def _append_line(path: Path, line: str) -> None:
    """Append one line under an exclusive lock, in one ``write``: racing acceptances never
    interleave or lose a line; a symlink, FIFO or device planted at ``path`` is refused."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        found = "a symlink" if path.is_symlink() else exc.strerror
        raise AcceptError(f"{path}: expected a baselines file, found {found}") from None
    data = line.encode("utf-8")
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise AcceptError(f"{path}: expected a baselines file, found another kind of file")
        fcntl.flock(fd, fcntl.LOCK_EX)
        written = os.write(fd, data)
        if written != len(data):
            raise AcceptError(f"{path}: wrote {written} of {len(data)} bytes (disk full?)")
    finally:
        os.close(fd)  # closing releases the lock


def acceptances(experiment_dir: str | Path) -> list[dict[str, Any]]:
    """Every readable acceptance, oldest first (unreadable lines are left out)."""
    good, _ = read_acceptances(Path(experiment_dir))
    return [entry.model_dump(mode="json") for _, entry in good]


def accepted_run(experiment_dir: str | Path) -> str | None:
    """The run id of the current accepted baseline, or None (also when the last line of
    ``baselines.jsonl`` cannot be used: the gate says why, see ``current_baseline``)."""
    try:
        found = current_baseline(Path(experiment_dir))
    except RecordError:
        return None
    return found.run_id if found else None
