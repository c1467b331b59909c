"""Typed readers for the records a run left behind: manifest, scores and accepted baselines.

Whoever had the artifacts folder could have written these files, so they are read as untrusted
input: one pydantic model per record kind, a size cap, no symlinks, and the run's identity taken
from its folder ``<root>/<experiment>/<run_id>``. A record that cannot be used raises
``RecordError``, one line naming the file, the field, what was expected and what was found.
"""

from __future__ import annotations

import json
import os
import stat
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError

from crucible_dagster.common.files import UnreadableFile, read_regular
from crucible_dagster.common.isotime import parse_datetime
from crucible_dagster.common.jsonsafe import DuplicateJsonKey, duplicate_json_keys
from crucible_dagster.experiment.names import MAX_NAME_LENGTH, NAME_PATTERN
from crucible_dagster.runtime.run_record import MANIFEST, RUN_ID_PATTERN

if TYPE_CHECKING:
    import pandas as pd

SCORES = "scores.parquet"
BASELINES = "baselines.jsonl"
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_SCORES_BYTES = 512 * 1024 * 1024
MAX_BASELINES_BYTES = 16 * 1024 * 1024
MAX_TEXT = 4096
#: Linux's PID_MAX_LIMIT: a larger pid names no process anywhere
MAX_PID = 2**22


class RecordError(ValueError):
    """A record that cannot be used: ``path: field: expected ..., found ...``."""

    def __init__(self, path: str | Path, field: str, expected: str, found: str) -> None:
        self.path, self.field, self.expected, self.found = str(path), field, expected, found
        super().__init__(terminal_safe(f"{path}: {field}: expected {expected}, found {found}"))


def terminal_safe(text: str) -> str:
    """``text`` with every control and format character escaped: a record cannot move the
    cursor, recolour the terminal, reorder text (bidi) or start a new line."""
    out = []
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(char.encode("unicode_escape").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


def shown(value: Any, limit: int = 60) -> str:
    """A short, escaped rendering of a value found in a record."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({type(value).__name__})"


def _timestamp(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError(f"an ISO 8601 timestamp with a time zone, found {shown(value)}")
    try:
        parsed = parse_datetime(value)
    except ValueError:
        raise ValueError(f"an ISO 8601 timestamp with a time zone, found {shown(value)}") from None
    if parsed.utcoffset() is None:
        raise ValueError(f"a timestamp with a time zone, found {shown(value)} (no time zone)")
    return parsed


Timestamp = Annotated[datetime | None, PlainValidator(_timestamp)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
RunId = Annotated[str, Field(pattern=f"^{RUN_ID_PATTERN.pattern}$")]
ExperimentId = Annotated[
    str, Field(pattern=f"^{NAME_PATTERN.pattern}$", max_length=MAX_NAME_LENGTH)
]


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)


class StageEntry(_Record):
    status: Annotated[str, Field(max_length=64)]


class Manifest(_Record):
    """``manifest.json`` as ``RunRecord`` writes it; unknown keys are kept (and diffed)."""

    schema_version: int = Field(ge=1, le=1000)
    experiment_id: ExperimentId
    run_id: RunId
    status: Literal["running", "completed", "failed", "interrupted", "budget_exhausted"]
    orchestrator: Annotated[str, Field(max_length=64)] | None = None
    pid: int | None = Field(default=None, ge=1, le=MAX_PID)
    host: Text | None = None
    started_at: Timestamp = None
    ended_at: Timestamp = None
    parent_run_id: RunId | None = None
    seed: int | None = None
    stages: dict[str, StageEntry] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    data_fingerprints: dict[str, Any] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    experiment: dict[str, Any] = Field(default_factory=dict)
    failure: dict[str, Any] | None = None


class Acceptance(_Record):
    """One line of ``baselines.jsonl``."""

    run_id: RunId
    experiment_id: ExperimentId
    accepted_at: Timestamp
    note: Text | None = None
    by: Annotated[str, Field(max_length=256)] | None = None


@dataclass(frozen=True)
class RunRead:
    """A run directory whose manifest parsed and matches its folder; ``raw`` is the JSON as read."""

    run_dir: Path
    manifest: Manifest
    raw: dict[str, Any]


@dataclass(frozen=True)
class Unreadable:
    """A record that did not parse, and why (one escaped line)."""

    path: Path
    error: RecordError

    @property
    def reason(self) -> str:
        return str(self.error)


def _field_error(path: Path, exc: ValidationError) -> RecordError:
    error = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in error["loc"]) or "record"
    message = str(error["msg"]).removeprefix("Value error, ")
    if "found " in message:  # our own validators say both halves
        expected, _, found = message.partition(", found ")
        return RecordError(path, field, expected, found)
    expected = message.replace("Input should be ", "").replace("Field required", "the field")
    found = "nothing" if error["type"] == "missing" else shown(error.get("input"))
    return RecordError(path, field, expected, found)


def read_bytes(path: Path, cap: int, what: str) -> bytes:
    """A regular file's bytes (never through a symlink, never more than ``cap``)."""
    try:
        return read_regular(path, cap)
    except UnreadableFile as exc:
        raise _unreadable(path, cap, what, exc) from None


def _unreadable(path: Path, cap: int, what: str, exc: UnreadableFile) -> RecordError:
    if exc.problem == "missing":
        return RecordError(path, "file", what, "no such file")
    if exc.problem == "open":
        found = "a symlink" if path.is_symlink() else exc.detail
        return RecordError(path, "file", f"{what} (a regular file)", found)
    if exc.problem == "not_regular":
        kind = "a directory" if stat.S_ISDIR(exc.st_mode) else "another kind of file"
        return RecordError(path, "file", f"{what} (a regular file)", kind)
    if exc.problem == "too_large":
        found = f"{exc.detail} bytes" if exc.detail else f"more than {cap} bytes"
        return RecordError(path, "file", f"at most {cap} bytes", found)
    return RecordError(path, "file", what, exc.detail)


def parse_json(path: Path, data: bytes, what: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=duplicate_json_keys)
    except DuplicateJsonKey as exc:
        found = f"duplicate key {exc.args[0]!r}"[:200]
        raise RecordError(path, "file", f"{what} (JSON)", found) from None
    except UnicodeDecodeError as exc:
        raise RecordError(path, "file", f"{what} in UTF-8", f"byte {exc.start} is not") from None
    except json.JSONDecodeError as exc:
        found = f"{exc.msg} at line {exc.lineno} column {exc.colno} (truncated?)"
        raise RecordError(path, "file", f"{what} (JSON)", found) from None
    except (ValueError, RecursionError) as exc:  # an int of 5000 digits, nesting
        raise RecordError(path, "file", f"{what} (JSON)", str(exc)[:200]) from None


_R = TypeVar("_R", bound=_Record)


def _validated(where: Path, data: bytes, what: str, model: type[_R]) -> tuple[dict[str, Any], _R]:
    """The JSON object in ``data`` and ``model`` validated from it: a manifest and a baselines
    line are refused the same way (not JSON, not an object, a bad field), each naming ``where``."""
    raw = parse_json(where, data, what)
    if not isinstance(raw, dict):
        raise RecordError(where, "record", "a JSON object", type(raw).__name__)
    try:
        return raw, model.model_validate(raw)
    except ValidationError as exc:
        raise _field_error(where, exc) from None


def read_run(run_dir: str | Path) -> RunRead:
    """A run directory's manifest, checked against its folder: the manifest's ``run_id`` and
    ``experiment_id`` must be the folder's names, or it is another run's record."""
    run_dir = Path(run_dir)
    path = run_dir / MANIFEST
    if run_dir.is_symlink():
        raise RecordError(run_dir, "folder", "a run folder", "a symlink")
    data = read_bytes(path, MAX_MANIFEST_BYTES, "a run manifest")
    raw, manifest = _validated(path, data, "a manifest", Manifest)
    for field, folder in (("run_id", run_dir), ("experiment_id", run_dir.parent)):
        if getattr(manifest, field) != folder.name:
            found = shown(getattr(manifest, field))
            raise RecordError(path, field, f"the folder's name {folder.name!r}", found)
    return RunRead(run_dir, manifest, raw)


def scan_runs(experiment_dir: Path) -> tuple[list[RunRead], list[Unreadable]]:
    """Every folder of an experiment that holds a manifest: read, or unreadable with why."""
    runs: list[RunRead] = []
    bad: list[Unreadable] = []
    if experiment_dir.is_symlink() or not experiment_dir.is_dir():
        return runs, bad
    for run_dir in sorted(experiment_dir.iterdir()):
        if not os.path.lexists(run_dir / MANIFEST):
            continue
        try:
            runs.append(read_run(run_dir))
        except RecordError as exc:
            bad.append(Unreadable(run_dir, exc))
    return runs, bad


Numbered = list[tuple[int, Acceptance]]


def read_acceptances(experiment_dir: Path) -> tuple[Numbered, list[tuple[int, Unreadable]]]:
    """The lines of ``baselines.jsonl`` by line number; a line that does not parse is
    unreadable (with its line number), the others still count."""
    path = experiment_dir / BASELINES
    if not os.path.lexists(path):
        return [], []
    data = read_bytes(path, MAX_BASELINES_BYTES, "a baselines file")
    good: list[tuple[int, Acceptance]] = []
    bad: list[tuple[int, Unreadable]] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            good.append((number, _acceptance(path, number, line, experiment_dir.name)))
        except RecordError as exc:
            bad.append((number, Unreadable(path, exc)))
    return good, bad


def _acceptance(path: Path, number: int, line: bytes, experiment_id: str) -> Acceptance:
    where = Path(f"{path}:{number}")
    _, entry = _validated(where, line, "a baseline line", Acceptance)
    if entry.experiment_id != experiment_id:
        found = f"{entry.experiment_id!r} (another experiment's baseline)"
        raise RecordError(where, "experiment_id", f"{experiment_id!r}", found)
    return entry


def current_baseline(experiment_dir: Path) -> Acceptance | None:
    """The accepted baseline: the last line of ``baselines.jsonl``. A last line that cannot be
    used raises ``RecordError``: falling back to an older line would compare with a baseline
    nobody chose last."""
    good, bad = read_acceptances(experiment_dir)
    if bad and (not good or bad[-1][0] > good[-1][0]):
        raise bad[-1][1].error
    return good[-1][1] if good else None


def read_scores_table(run_dir: str | Path) -> pd.DataFrame | None:
    """``scores.parquet`` as ``unit_id, group, value``, or None when the run kept none."""
    path = Path(run_dir) / SCORES
    if not os.path.lexists(path):
        return None
    read_bytes_check(path, MAX_SCORES_BYTES, "a scores table")
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        found = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise RecordError(path, "file", "a Parquet table", found) from None
    wanted = {"unit_id": pa.types.is_string, "group": pa.types.is_string}
    for column, check in wanted.items():
        _check_column(path, table, column, check, "text")
    _check_column(path, table, "value", _is_number, "numbers")
    frame = table.select(["unit_id", "group", "value"]).to_pandas()
    frame["value"] = frame["value"].astype(float)
    return frame


def _is_number(kind: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_floating(kind) or pa.types.is_integer(kind))


def _check_column(path: Path, table: Any, column: str, check: Any, what: str) -> None:
    import pyarrow as pa

    if column not in table.column_names:
        found = f"columns {shown(table.column_names)}"
        raise RecordError(path, f"column {column!r}", f"a column of {what}", found)
    kind = table.schema.field(column).type
    if not (check(kind) or (what == "text" and pa.types.is_large_string(kind))):
        raise RecordError(path, f"column {column!r}", what, f"type {kind}")
    if table.column(column).null_count:
        found = f"{table.column(column).null_count} missing values"
        raise RecordError(path, f"column {column!r}", f"{what} in every row", found)


def read_bytes_check(path: Path, cap: int, what: str) -> None:
    """Refuse a symlink, a non-regular file or one over ``cap`` before a library opens it."""
    try:
        info = path.lstat()
    except OSError as exc:
        raise RecordError(path, "file", what, exc.strerror or str(exc)) from None
    if stat.S_ISLNK(info.st_mode):
        raise RecordError(path, "file", f"{what} (a regular file)", "a symlink")
    if not stat.S_ISREG(info.st_mode):
        raise RecordError(path, "file", f"{what} (a regular file)", "another kind of file")
    if info.st_size > cap:
        raise RecordError(path, "file", f"at most {cap} bytes", f"{info.st_size} bytes")
