"""The run record and its directory ``<artifacts root>/<experiment_id>/<run_id>/``: manifest, telemetry, trace, reports.

Every run writes one, standalone or under Dagster, so a run can be reproduced and
compared (``crucible diff``). Every file is written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

from crucible_dagster.common.files import atomic_write_text
from crucible_dagster.common.jsonsafe import to_jsonable
from crucible_dagster.common.locations import local_path
from crucible_dagster.common.processes import pid_alive
from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.telemetry import JsonlSink, Sink, Telemetry
from crucible_dagster.runtime.trace import TraceChain

ARTIFACTS_ENV = "CRUCIBLE_ARTIFACTS_DIR"
MANIFEST = "manifest.json"
TELEMETRY = "telemetry.jsonl"
TRACKED_PACKAGES = (
    "crucible_dagster",
    "dagster",
    "pydantic",
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "scikit-learn",
)


def artifacts_root(explicit: str | Path | None = None) -> Path:
    """The run directories' root: ``explicit``, else ``$CRUCIBLE_ARTIFACTS_DIR``, else ./artifacts."""
    where = f"the artifacts root ({ARTIFACTS_ENV} or the crucible resource's artifacts_dir)"
    return local_path(explicit or os.environ.get(ARTIFACTS_ENV) or "artifacts", where).resolve()


def experiment_hash(experiment: Experiment) -> str:
    data = experiment.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


@cache
def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


def _git(cwd: str, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
    )
    return done.stdout.strip()


@cache
def git_state(cwd: str) -> dict[str, Any] | None:
    try:
        commit = _git(cwd, "rev-parse", "HEAD")
        dirty = _git(cwd, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


RunStatus = Literal["running", "completed", "failed", "interrupted"]


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


class RunRecord:
    """Everything a run records about itself: its directory, manifest, status, telemetry and trace.

    The standalone runner, the Dagster stage ops, the sweep and its trials all keep their
    records through this one object, so the manifest means the same wherever a run ran.
    ``create`` starts a run; ``open`` picks it up again in a later step; the run ends when
    ``finish`` writes a terminal status.

    The manifest is written when the run starts, when it ends (completed, failed or
    interrupted) and on ``flush``; stage outcomes in between are kept in memory, and
    ``telemetry.jsonl`` (appended as each stage starts and ends) shows how far a killed run
    got. A later step in the same process gets the same object back from ``open``; a step in
    another process reads the manifest, so a step that hands the run on to another process
    calls ``flush`` first.
    """

    def __init__(self, path: Path, manifest: dict[str, Any], sinks: Iterable[Sink] = ()):
        self.path = path
        self.manifest = manifest
        self._jsonl = JsonlSink(path / TELEMETRY)
        self.telemetry = Telemetry(
            [*sinks, self._jsonl],
            experiment_id=manifest.get("experiment_id"),
            run_id=manifest.get("run_id"),
        )

    def use_sinks(self, sinks: Iterable[Sink]) -> RunRecord:
        """The caller's sinks (a Dagster op's log) in place of the previous step's."""
        self.telemetry.sinks = [*self.telemetry.sinks[:1], *sinks, self._jsonl]
        return self

    @classmethod
    def create(
        cls,
        path: str | Path,
        experiment: Experiment,
        *,
        run_id: str,
        params: Mapping[str, Any] | None = None,
        orchestrator: str = "standalone",
        sinks: Iterable[Sink] = (),
        steps: Iterable[str] | None = None,
        **extra: Any,
    ) -> RunRecord:
        """Start a run at ``path``: every step (by default each pipeline stage) is listed as
        pending, or skipped for a disabled stage."""
        path = Path(path).absolute()
        create_exclusively(path)
        if steps is None:
            stages = {
                s.name: {"status": "pending" if s.enabled else "skipped"}
                for s in experiment.pipeline
            }
        else:
            stages = {step: {"status": "pending"} for step in steps}
        manifest = {
            "schema_version": 1,
            "experiment_id": experiment.id,
            "run_id": run_id,
            "orchestrator": orchestrator,
            "status": "running",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": datetime.now(UTC).isoformat(),
            "ended_at": None,
            "experiment": experiment.model_dump(mode="json", by_alias=True, exclude_defaults=True),
            "experiment_hash": experiment_hash(experiment),
            "parameters": dict(params or {}),
            "seed": experiment.seed,
            "seeds": experiment.seeds,
            "stages": stages,
            "package_versions": package_versions(),
            "git": git_state(os.getcwd()),
            "data_fingerprints": {},
            "metrics": {},
            **extra,
        }
        record = cls(path, manifest, sinks)
        record.write_manifest()
        _OPEN[path] = record
        record.telemetry.emit("run_started", stages=len(experiment.pipeline))
        return record

    @classmethod
    def open(cls, path: str | Path, *, sinks: Iterable[Sink] = ()) -> RunRecord | None:
        """The run recorded at ``path`` (this process's own object while the run is open here),
        or None when no run was started there."""
        path = Path(path).absolute()
        live = _OPEN.get(path)
        if live is not None:
            return live.use_sinks(sinks)
        if not (path / MANIFEST).is_file():
            return None
        record = cls(path, read_manifest(path), sinks)
        if record.manifest.get("status") == "running":
            _OPEN[path] = record
        return record

    @property
    def pending_stages(self) -> list[str]:
        stages = self.manifest.get("stages") or {}
        return [name for name, entry in stages.items() if entry.get("status") == "pending"]

    def record_stage(
        self, name: str, status: str, options: Any = None, duration_ms: float | None = None
    ) -> None:
        """Record a stage's outcome (in memory until the run ends or ``flush``)."""
        entry = self.manifest.setdefault("stages", {}).setdefault(name, {})
        entry["status"] = status
        if options is not None:
            entry["options"] = to_jsonable(options)
        if duration_ms is not None:
            entry["duration_ms"] = round(duration_ms, 3)

    def mark_completed(self, names: Iterable[str]) -> None:
        """Stages an earlier run or step completed (a re-execution starts after them)."""
        pending = set(self.pending_stages)
        for name in names:
            if name in pending:
                self.manifest["stages"][name]["status"] = "completed"

    def flush(self) -> None:
        """Write the manifest as it is now: before another process takes the run on."""
        self.write_manifest()

    def finish(
        self,
        status: RunStatus,
        *,
        metrics: Any = None,
        trace: TraceChain | None = None,
        fingerprints: Any = None,
        failure: Any = None,
    ) -> None:
        """End the run with a terminal status; the manifest is the last file written."""
        if trace is not None:
            self.write_text("trace.json", trace.export("json"))
        started = datetime.fromisoformat(self.manifest["started_at"])
        ended = datetime.now(UTC)
        self.manifest.update(
            status=status,
            ended_at=ended.isoformat(),
            metrics=to_jsonable(metrics or {}),
            data_fingerprints=to_jsonable(fingerprints or {}),
        )
        if failure is not None:
            self.manifest["failure"] = to_jsonable(failure)
        duration = round((ended - started).total_seconds() * 1000, 3)
        stage = (
            {"stage": failure["stage"]}
            if isinstance(failure, Mapping) and "stage" in failure
            else {}
        )
        self.telemetry.emit(f"run_{status}", duration_ms=duration, **stage)
        _OPEN.pop(self.path, None)
        self.write_manifest()

    def finish_context(self, status: RunStatus, ctx: Context, failure: Any = None) -> None:
        """``finish`` with what a Context holds: metrics, trace and data fingerprints."""
        self.finish(
            status,
            metrics=ctx.metrics,
            trace=ctx.trace,
            fingerprints=ctx.assigns.get("data_fingerprints"),
            failure=failure,
        )

    def abort(self, exc: BaseException, ctx: Context | None = None) -> None:
        """End the run for an exception that escaped it: ``failed`` for an error, ``interrupted``
        for an interrupt (``KeyboardInterrupt``, ``SystemExit``, a signal turned into one)."""
        status: RunStatus = "failed" if isinstance(exc, Exception) else "interrupted"
        failure = {"error_type": type(exc).__name__, "message": str(exc) or type(exc).__name__}
        try:
            if ctx is not None:
                self.finish_context(status, ctx, failure)
            else:
                self.finish(status, failure=failure)
        except OSError:
            pass  # the storage itself failed; the original exception is what the caller sees

    def write_manifest(self) -> None:
        atomic_write_text(
            self.path / MANIFEST, json.dumps(to_jsonable(self.manifest), indent=2, sort_keys=True)
        )

    def write_text(self, name: str, text: str) -> Path:
        return atomic_write_text(self.path / name, text)


#: runs this process has open, by directory: later steps in this process reuse the object
_OPEN: dict[Path, RunRecord] = {}


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
