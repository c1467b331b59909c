"""Where runs live and how their manifests are read back: the artifacts root, run ids, run
directories (created exclusively), and the manifest a finished or killed run left.

The run record (``run_record.RunRecord``) writes here; the history, ``crucible runs`` and the
gate read here without loading the record's machinery.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crucible_dagster.common.locations import local_path
from crucible_dagster.common.processes import pid_alive

if TYPE_CHECKING:
    from crucible_dagster.runtime.context import Context

ARTIFACTS_ENV = "CRUCIBLE_ARTIFACTS_DIR"
MANIFEST = "manifest.json"


def artifacts_root(explicit: str | Path | None = None) -> Path:
    """The run directories' root: ``explicit``, else ``$CRUCIBLE_ARTIFACTS_DIR``, else ./artifacts."""
    where = f"the artifacts root ({ARTIFACTS_ENV} or the crucible resource's artifacts_dir)"
    return local_path(explicit or os.environ.get(ARTIFACTS_ENV) or "artifacts", where).resolve()


RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")


class RunDirectoryError(ValueError):
    """A run directory that cannot be created: a bad run id, or one that is already used."""


def check_run_id(run_id: str) -> str:
    """A run id names a directory: no separators, not ``.``/``..``, at most 128 characters."""
    if not RUN_ID_PATTERN.fullmatch(run_id) or ".." in run_id:
        raise RunDirectoryError(
            f"expected a run id of letters, digits, '_', '-' and '.' (not starting with '.', "
            f"no '..', at most 128 characters), got {run_id!r}"
        )
    return run_id


def run_directory(root: str | Path | None, experiment_id: str, run_id: str) -> Path:
    return artifacts_root(root) / experiment_id / check_run_id(run_id)


def report_base(ctx: Context) -> Path:
    """The run's own folder, where its reports and per-sample table go: the run directory the
    runner made, else where the artifacts layout puts it."""
    if ctx.run_dir:
        return Path(ctx.run_dir)
    return run_directory(None, ctx.experiment_id, ctx.run_id)


def run_root(ctx: Context) -> Path:
    """The artifacts root the run writes under: its run directory's grandparent, else the
    configured root (a run without a directory)."""
    return Path(ctx.run_dir).parent.parent if ctx.run_dir else artifacts_root(None)


def create_exclusively(path: Path) -> None:
    """Make ``path`` a new directory, or fail: a run never writes into another run's directory.

    When several processes race for one run id, exactly one ``mkdir`` succeeds.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.parent.is_symlink() or not path.parent.is_dir():
        raise RunDirectoryError(f"{path.parent} is not a directory")
    try:
        path.mkdir()
    except FileExistsError:
        raise RunDirectoryError(
            f"run directory {path} already exists: a run id is used once; choose another "
            "(the earlier run's files are left as they are)"
        ) from None


def stale_note(manifest: Mapping[str, Any]) -> str | None:
    """Why a manifest that says ``running`` is no run at all any more (a killed process), or None."""
    if manifest.get("status") != "running":
        return None
    pid = manifest.get("pid")
    if not isinstance(pid, int) or pid_alive(pid):
        return None
    return f"run {manifest.get('run_id')} says 'running' but its process {pid} is gone (killed?)"


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read a manifest given a run directory or the manifest file itself; ValueError if it is none."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST
    if not path.is_file():
        raise ValueError(f"no {MANIFEST} at {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not JSON ({exc})") from None
    if not isinstance(data, dict) or not {"schema_version", "experiment_id", "run_id"} <= set(data):
        raise ValueError(f"{path} is JSON but not a crucible run manifest")
    return data
