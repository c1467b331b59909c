"""The one schema of every telemetry event (a line of a run's ``telemetry.jsonl``), versioned.

Lifecycle events (run, dataset, stage, sweep) and request events share it: the original's
enriched fields (event id, name, timestamp, experiment and run ids, variant, sample id, model,
provider, latency, tokens, cost, success, error kind) plus ours (stage, trial, round, host,
pid). A request's prompt and answer are fields only when the experiment asks
(``telemetry.capture_text``), PII redacted.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from crucible_dagster.common.files import bounded_lines
from crucible_dagster.common.jsonsafe import DuplicateJsonKey, duplicate_json_keys

SCHEMA_VERSION: Literal[1] = 1
#: the largest line read back: a longer one is not an event we wrote
MAX_LINE_BYTES = 64 * 1024
#: the largest file read back (about two million events); a larger one is refused, not read
MAX_FILE_BYTES = 512 * 1024 * 1024

#: a count past this (a trillion) is not one a run made: a record from elsewhere
Count = Annotated[int, Field(ge=0, le=10**12)]
Millis = Annotated[float, Field(ge=0, le=10**10, allow_inf_nan=False)]
Amount = Annotated[float, Field(ge=0, le=10**12, allow_inf_nan=False)]
Name = Annotated[str, Field(max_length=512)]
#: what a ``request`` event must say, or it is not one
REQUEST_FIELDS = ("variant", "sample_id", "success")


class TelemetryEvent(BaseModel):
    """One event. ``event`` is its name: ``run_started``, ``stage_completed``, ``request`` ..."""

    #: strict: ``"yes"`` is not a bool nor ``"7"`` a count; a line that says otherwise is
    #: not one we wrote, and is reported, not converted
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Annotated[str, Field(min_length=1, max_length=64)]
    event: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    timestamp: Annotated[datetime, Field(strict=False)]  # ISO 8601 text, with its offset
    experiment_id: Name | None = None
    run_id: Name | None = None
    # where in the run
    stage: Name | None = None
    trial: Name | None = None
    round: Count | None = None
    host: Name | None = None
    pid: Annotated[int, Field(ge=1)] | None = None
    # a request: one sample's answer from one variant (condition) of a model
    variant: Name | None = None
    sample_id: Name | None = None
    model: Name | None = None
    provider: Name | None = None
    latency_ms: Millis | None = None
    prompt_tokens: Count | None = None
    completion_tokens: Count | None = None
    cost: Amount | None = None
    success: bool | None = None
    error_kind: Name | None = None
    cached: bool | None = None
    extra_requests: Count | None = None
    #: a retry's or a hedge's number (the first request is 0), whether a hedge's answer won,
    #: and how long a retry waited before it was sent
    attempt: Count | None = None
    won: bool | None = None
    wait_ms: Millis | None = None
    # an ensemble's vote on one sample
    members_asked: Count | None = None
    members_counted: Count | None = None
    agreement: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None
    stopped_early: bool | None = None
    #: a guardrail detector's or a fairness metric's findings: its kind and how many
    finding: Name | None = None
    count: Count | None = None
    #: the share of such events kept (1 when all are): a count of kept events is divided by it
    sampling_rate: Annotated[float, Field(ge=1e-6, le=1, allow_inf_nan=False)] | None = None
    #: a request's prompt and answer, PII redacted: only with ``telemetry.capture_text: true``
    input_text: Annotated[str, Field(max_length=2000)] | None = None
    output_text: Annotated[str, Field(max_length=2000)] | None = None
    # lifecycle
    stages: Count | None = None
    module: Name | None = None
    duration_ms: Millis | None = None
    error_type: Name | None = None
    message: Annotated[str, Field(max_length=8192)] | None = None
    rows: Count | None = None
    fingerprint: Name | None = None
    trials: Count | None = None

    @model_validator(mode="after")
    def _a_request_says_what_it_was(self) -> TelemetryEvent:
        if self.event == "request":
            missing = [f for f in REQUEST_FIELDS if getattr(self, f) is None]
            if missing:
                raise ValueError(f"a request event needs {', '.join(missing)}")
        return self

    #: a trial's (or a run's) status, and its sweep metric's value
    status: Name | None = None
    value: Annotated[float, Field(allow_inf_nan=False)] | None = None


def tz_aware(event: TelemetryEvent) -> TelemetryEvent:
    if event.timestamp.tzinfo is None:
        raise ValueError("timestamp: expected a time with its UTC offset")
    return event


def read_events(path: str | Path) -> tuple[list[TelemetryEvent], list[str]]:
    """The events of one ``telemetry.jsonl``, each line checked against the schema, and a
    problem (``file:line: field: expected ..., found ...``) for each line that is not one: a
    run killed mid-write leaves at most a torn last line, which is reported, not fatal."""
    path = Path(path)
    events: list[TelemetryEvent] = []
    problems: list[str] = []
    if path.is_symlink() or not path.is_file():
        found = "a symlink" if path.is_symlink() else "not a regular file"
        return events, [f"{path}: expected a regular file, found {found}"]
    if path.stat().st_size > MAX_FILE_BYTES:
        return events, [
            f"{path}: expected at most {MAX_FILE_BYTES} bytes, found {path.stat().st_size}"
        ]
    with path.open("rb") as handle:
        for number, (raw, too_long) in enumerate(bounded_lines(handle, MAX_LINE_BYTES), 1):
            where = f"{path}:{number}"
            if too_long:  # skipped a chunk at a time, never held whole
                problems.append(f"{where}: expected a line under {MAX_LINE_BYTES} bytes")
                continue
            if not raw.strip():
                continue
            try:
                data = json.loads(raw.decode("utf-8"), object_pairs_hook=duplicate_json_keys)
                events.append(tz_aware(TelemetryEvent.model_validate(data)))
            except UnicodeDecodeError:
                problems.append(f"{where}: expected UTF-8 text")
            except DuplicateJsonKey as exc:
                problems.append(f"{where}: {exc.args[0]}: written twice in one event")
            except RecursionError:
                problems.append(f"{where}: expected an event, found JSON nested too deep")
            except ValueError as exc:
                problems.append(_problem(where, exc))
    return events, problems


def _problem(where: str, exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "(line)"
        found = repr(error.get("input"))[:60]
        return f"{where}: {field}: {error['msg']}, found {found}"
    if isinstance(exc, json.JSONDecodeError):
        return f"{where}: expected one JSON object per line ({exc.msg})"
    return f"{where}: {exc}"
