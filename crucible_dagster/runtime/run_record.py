"""The run record and its directory ``<artifacts root>/<experiment_id>/<run_id>/``: manifest, telemetry, trace, reports.

Every run writes one, standalone or under Dagster, so a run can be reproduced and
compared (``crucible diff``). Every file is written atomically. Only the run driver
(``runtime.driver.Run``) creates, opens and ends a record; where runs live and how a manifest
is read back are in ``run_dirs``, what a run records of its origin in ``provenance``.

A full disk still ends the record: the run reserves room for its final manifest when it
starts (``.manifest.reserve``), and frees it for that manifest when the disk is full; see
``RunRecord.finish``.
"""

from __future__ import annotations

import errno
import json
import os
import socket
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from crucible_dagster.common.files import (
    atomic_write_bytes,
    atomic_write_text,
    is_disk_full,
    write_in_place,
)
from crucible_dagster.common.jsonsafe import to_jsonable
from crucible_dagster.common.pii import redact_record
from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.provenance import experiment_hash, git_state, package_versions
from crucible_dagster.runtime.run_dirs import (
    ARTIFACTS_ENV,
    MANIFEST,
    RUN_ID_PATTERN,
    RunDirectoryError,
    artifacts_root,
    check_run_id,
    create_exclusively,
    read_manifest,
    run_directory,
    stale_note,
)
from crucible_dagster.runtime.telemetry import JsonlSink, Sink, Telemetry
from crucible_dagster.runtime.trace import TraceChain
from crucible_dagster.telemetry.otlp import otlp_enabled, trace_sinks

#: the places and readers now in run_dirs and provenance, still importable from here
__all__ = [
    "ARTIFACTS_ENV",
    "MANIFEST",
    "RUN_ID_PATTERN",
    "RunDirectoryError",
    "RunRecord",
    "RunStatus",
    "artifacts_root",
    "check_run_id",
    "create_exclusively",
    "experiment_hash",
    "read_manifest",
    "run_directory",
    "stale_note",
]
TELEMETRY = "telemetry.jsonl"
#: room held for the final manifest from the run's start; removed when the run ends
RESERVE = ".manifest.reserve"
#: the reserve: this much beyond twice the starting manifest (failure, stage options, metrics)
RESERVE_MARGIN = 16 * 1024
#: what a final manifest leaves out when the disk has no room for all of it
SLIMMED = ("experiment", "metrics", "package_versions", "parameters")


#: ``budget_exhausted``: every stage ran, but the budget (``budget:``) stopped the calls to the
#: models before every sample was asked; the answers had are kept (a terminal status)
RunStatus = Literal["running", "completed", "failed", "interrupted", "budget_exhausted"]


class RunRecord:
    """Everything a run records about itself: its directory, manifest, status, telemetry and trace.

    The standalone runner, the Dagster stage ops, the sweep and its trials all keep their
    records through this one object, by way of the run driver (``runtime.driver.Run``), so the
    manifest means the same wherever a run ran.
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
        # after the file: when the run ends, the OTLP export reads every event the file holds
        self._own: list[Sink] = [self._jsonl, *trace_sinks(path / TELEMETRY)]
        self.telemetry = Telemetry(
            [*sinks, *self._own],
            experiment_id=manifest.get("experiment_id"),
            run_id=manifest.get("run_id"),
        )

    def use_sinks(self, sinks: Iterable[Sink]) -> RunRecord:
        """The caller's sinks (a Dagster op's log) in place of the previous step's."""
        self.telemetry.sinks = [*self.telemetry.sinks[:1], *sinks, *self._own]
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
        otlp_enabled()  # a bad CRUCIBLE_OTEL is refused before the folder exists
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
            "started_at": datetime.now(timezone.utc).isoformat(),
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
            self.manifest.update(status="failed", ended_at=datetime.now(timezone.utc).isoformat())
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
        started = datetime.fromisoformat(self.manifest["started_at"])  # written by isoformat()
        ended = datetime.now(timezone.utc)
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
        for sink in self._own:  # after the record is final: an export never holds it open
            getattr(sink, "after_run", lambda: None)()
        full = full or written
        if full is not None:
            raise full

    def finish_context(self, status: RunStatus, ctx: Context, failure: Any = None) -> None:
        """``finish`` with what a Context holds: metrics, trace and data fingerprints."""
        guardrails = ctx.metrics.get("guardrails")
        if isinstance(guardrails, Mapping) and "redacted" in guardrails:
            self._redact_copies(ctx)
        self.finish(
            status,
            metrics=ctx.metrics,
            trace=ctx.trace,
            fingerprints=ctx.assigns.get("data_fingerprints"),
            failure=failure,
        )

    def _redact_copies(self, ctx: Context) -> None:
        """The guardrails redacted PII: the manifest's experiment is the Context's (its found
        values redacted), and the stages' options lose every finding (inline examples)."""
        if ctx.experiment is not None:
            dump = ctx.experiment.model_dump(mode="json", by_alias=True, exclude_defaults=True)
            self.manifest["experiment"] = dump
        for entry in (self.manifest.get("stages") or {}).values():
            if isinstance(entry, dict) and "options" in entry:
                entry["options"] = redact_record(entry["options"])

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
