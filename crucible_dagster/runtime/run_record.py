"""The run record and its directory ``<artifacts root>/<experiment_id>/<run_id>/``: manifest, telemetry, trace, reports.

Every run writes one, standalone or under Dagster, so a run can be reproduced and
compared (``crucible diff``). Every file is written atomically.

A full disk still ends the record: the run reserves room for its final manifest when it
starts (``.manifest.reserve``), and frees it for that manifest when the disk is full; see
``RunRecord.finish``.
"""

from __future__ import annotations

import errno
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

from crucible_dagster.common.files import (
    atomic_write_bytes,
    atomic_write_text,
    is_disk_full,
    write_in_place,
)
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
#: room held for the final manifest from the run's start; removed when the run ends
RESERVE = ".manifest.reserve"
#: the reserve: this much beyond twice the starting manifest (failure, stage options, metrics)
RESERVE_MARGIN = 16 * 1024
#: what a final manifest leaves out when the disk has no room for all of it
SLIMMED = ("experiment", "metrics", "package_versions", "parameters")
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
        self._ended = False
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
        record._start()
        _OPEN[path] = record
        full = _disk_full_or_raise(
            lambda: record.telemetry.emit("run_started", stages=len(experiment.pipeline)),
            path / TELEMETRY,
        )
        if full is not None:  # the reserve took the last room: the run ends before it began
            record.finish("failed", failure=disk_full_failure(full, "starting the run"))
            raise full  # even if the disk had room again for the end: no stage runs
        return record

    def _start(self) -> None:
        """The first manifest, then the room its final version needs. On a full disk the run
        ends here, failed (or, when not even that fits, leaves no directory) and the error
        propagates."""
        target = self.path / MANIFEST
        try:
            size = len(self._manifest_bytes())
            self.write_manifest()
            target = self.path / RESERVE
            atomic_write_bytes_sized(target, 2 * size + RESERVE_MARGIN)
        except OSError as error:
            if not is_disk_full(error):
                raise
            exc = _naming(error, target)
            # No stage ran and no telemetry began: the manifest alone ends the record.
            self.manifest.update(status="failed", ended_at=datetime.now(UTC).isoformat())
            self._fail_for(exc, "starting the run")
            self._ended = True
            try:
                self._write_final_manifest()
            except OSError:
                self._remove_unstarted()
            raise exc from None

    def _remove_unstarted(self) -> None:
        """Not even a failed manifest fitted: no run started, so its directory goes (with the
        telemetry line or reserve it began), rather than stay as a run without a record."""
        if (self.path / MANIFEST).exists():
            return
        for name in (TELEMETRY, RESERVE):
            _remove(self.path / name)
        if not any(self.path.iterdir()):
            self.path.rmdir()

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
        """End the run with a terminal status; the manifest is the last file written.

        On a full disk the manifest still ends the record: ``failed`` with the reason
        ``ENOSPC`` (and the run's own failure, if any, as its ``cause``), written into the
        room reserved at the start; then the error propagates to the caller.
        """
        full: OSError | None = None
        if trace is not None:
            full = _disk_full_or_raise(
                lambda: self.write_text("trace.json", trace.export("json")),
                self.path / "trace.json",
            )
        started = datetime.fromisoformat(self.manifest["started_at"])
        ended = datetime.now(UTC)
        self.manifest.update(
            status=status,
            ended_at=ended.isoformat(),
            metrics=to_jsonable(metrics or {}),
            data_fingerprints=to_jsonable(fingerprints or {}),
        )
        if failure is not None:
            self.manifest["failure"] = _with_disk_reason(to_jsonable(failure))
        duration = round((ended - started).total_seconds() * 1000, 3)
        stage = (
            {"stage": failure["stage"]}
            if isinstance(failure, Mapping) and "stage" in failure
            else {}
        )
        emitted = _disk_full_or_raise(
            lambda: self.telemetry.emit(f"run_{status}", duration_ms=duration, **stage),
            self.path / TELEMETRY,
        )
        full = full or emitted
        if full is not None:
            self._fail_for(full, "writing the run's record")
        _OPEN.pop(self.path, None)
        self._ended = True
        written = self._write_final_manifest()
        full = full or written
        if full is not None:
            raise full

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
        if self._ended:
            return  # the record already ended (a full disk raised after writing it)
        status: RunStatus = "failed" if isinstance(exc, Exception) else "interrupted"
        failure = {"error_type": type(exc).__name__, "message": str(exc) or type(exc).__name__}
        try:
            if ctx is not None:
                self.finish_context(status, ctx, failure)
            else:
                self.finish(status, failure=failure)
        except OSError:
            pass  # the storage itself failed; the original exception is what the caller sees

    def _manifest_bytes(self) -> bytes:
        return json.dumps(to_jsonable(self.manifest), indent=2, sort_keys=True).encode("utf-8")

    def write_manifest(self) -> None:
        atomic_write_bytes(self.path / MANIFEST, self._manifest_bytes())

    def _fail_for(self, exc: OSError, doing: str) -> None:
        """The manifest says ``failed`` for want of room; the run's own failure is the cause."""
        cause = self.manifest.get("failure")
        if isinstance(cause, dict) and cause.get("reason") == "ENOSPC":
            failure = cause  # it says so already
        else:
            failure = disk_full_failure(exc, doing)
            if cause is not None:
                failure["cause"] = cause
        self.manifest.update(status="failed", failure=failure)

    def _write_final_manifest(self) -> OSError | None:
        """Write the terminal manifest, whatever room is left: atomically; on a full disk into
        the reserve's room, then slimmed (``SLIMMED``), then over the starting manifest's
        blocks. Returns the disk-full error it met (None when the first write fitted)."""
        manifest = self.path / MANIFEST
        try:
            self.write_manifest()
            _remove(self.path / RESERVE)
            return None
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            first = _naming(exc, manifest)
        _remove(self.path / RESERVE)
        self._fail_for(first, "writing the final manifest")
        attempts = (self.write_manifest, self._slim, self._write_in_place)
        for attempt in attempts:
            try:
                attempt()
                return first
            except OSError as exc:
                if not is_disk_full(exc):
                    raise
        raise first

    def _slim(self) -> None:
        """The record without what can be had elsewhere or is unbounded: the experiment (its
        hash stays), the stages' options, the metrics. Its status and failure are what count."""
        dropped = [key for key in SLIMMED if self.manifest.get(key)]
        for key in dropped:
            self.manifest[key] = {}
        for entry in (self.manifest.get("stages") or {}).values():
            if isinstance(entry, dict) and entry.pop("options", None) is not None:
                dropped.append("stage options")
        if dropped:
            self.manifest["failure"]["dropped"] = sorted(set(dropped))
        self.write_manifest()

    def _write_in_place(self) -> None:
        """The last resort: the compact manifest over the starting one's blocks."""
        data = json.dumps(to_jsonable(self.manifest), sort_keys=True).encode("utf-8")
        write_in_place(self.path / MANIFEST, data)

    def write_text(self, name: str, text: str) -> Path:
        return atomic_write_text(self.path / name, text)


#: runs this process has open, by directory: later steps in this process reuse the object
_OPEN: dict[Path, RunRecord] = {}


def disk_full_failure(exc: OSError, doing: str) -> dict[str, Any]:
    where = f" ({exc.filename})" if exc.filename else ""
    return {
        "error_type": "OSError",
        "reason": "ENOSPC",
        "message": f"no space left on the device while {doing}{where}: {exc.strerror or exc}",
    }


def _with_disk_reason(failure: Any) -> Any:
    """A stage that failed for want of room says so in ``reason``, as a record that did."""
    if isinstance(failure, dict) and str(failure.get("message", "")).startswith(
        (f"[Errno {errno.ENOSPC}]", f"[Errno {errno.EDQUOT}]")
    ):
        return {**failure, "reason": "ENOSPC"}
    return failure


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` with the file it was writing (a failed ``write`` names none)."""
    return exc if exc.filename else OSError(exc.errno, exc.strerror, str(path))


def _disk_full_or_raise(write: Any, path: Path) -> OSError | None:
    """Run ``write``; a full disk is returned for the record to note, any other error raised."""
    try:
        write()
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        return _naming(exc, path)
    return None


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def atomic_write_bytes_sized(path: Path, size: int) -> None:
    """A file of ``size`` zero bytes, written whole: blocks held for a later write."""
    atomic_write_bytes(path, bytes(size))


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
