"""A worker's pid file: the record it holds, reading and checking it, and whether its pid is
still the process we started.

A pid file is a JSON record: the pid, the process's start time, its name, queue and state
folder. A command acts only on a pid whose process is still that worker (same start time, same
name on its command line). The file of a worker that ended is removed; anything else is
reported, left in place and never signalled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crucible_dagster.common.files import UnreadableFile, read_regular
from crucible_dagster.common.processes import (
    MAX_PID,
    MIN_MANAGED_PID,
    command_line,
    is_same_process,
    start_time,
)
from crucible_dagster.dagster_plugin.celery.settings import QUEUE_PATTERN

PID_SCHEMA = "crucible-worker/1"
#: a pid file is a few hundred bytes; anything far larger is not one of ours
MAX_PID_FILE_BYTES = 4096
NAME_RE = re.compile(r"crucible-[0-9a-f]{8}-w([1-9][0-9]{0,5})")
LOCK_FILE = ".workers.lock"


class WorkerRecord(BaseModel):
    """What a pid file says: enough to recognise the one process it names, and nothing else."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    pid: int = Field(ge=MIN_MANAGED_PID, le=MAX_PID)
    start_time: str = Field(min_length=1, max_length=200)
    name: str = Field(pattern=f"^{NAME_RE.pattern}$")
    queue: str = Field(pattern=QUEUE_PATTERN)
    state: str = Field(min_length=1, max_length=4096)
    schema_: str = Field(alias="schema", pattern=f"^{re.escape(PID_SCHEMA)}$")

    def dumps(self) -> str:
        return json.dumps(self.model_dump(by_alias=True), indent=2, sort_keys=True) + "\n"


class CommandError(Exception):
    """A problem the command reports in one line, exiting 1."""


@dataclass
class Scan:
    """The live workers of a state folder, and one line for each pid file that was not one."""

    workers: dict[str, WorkerRecord] = field(default_factory=dict)
    #: pid files of workers that ended (a crash, a reboot): removed, not an error
    ended: list[str] = field(default_factory=list)
    #: pid files that are no record of ours (wrong shape, pid 0, another folder's): an error
    refused: list[str] = field(default_factory=list)


def shown(value: object, limit: int = 60) -> str:
    """A value from a file as one safe terminal token: repr escapes control characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def name_key(state: Path, queue: str) -> str:
    """Eight hex digits that differ between state folders and queues on one broker."""
    return hashlib.sha256(f"{state}\0{queue}".encode()).hexdigest()[:8]


def worker_name(state: Path, queue: str, index: int) -> str:
    return f"crucible-{name_key(state, queue)}-w{index}"


def node_name(name: str) -> str:
    """The worker's Celery node name, with the host spelled out (no ``%h`` to guess later)."""
    return f"{name}@{socket.gethostname()}"


def _read_pid_file(path: Path) -> str:
    """The file's text, refusing anything but a small regular UTF-8 file (never following links)."""
    if path.is_symlink():  # said so, rather than O_NOFOLLOW's "too many levels of symbolic links"
        raise CommandError("is a symlink (a pid file is never followed)")
    try:
        data = read_regular(path, MAX_PID_FILE_BYTES)
    except UnreadableFile as exc:
        if exc.problem == "not_regular":
            raise CommandError("is not a regular file") from None
        if exc.problem == "too_large":
            raise CommandError(f"is larger than {MAX_PID_FILE_BYTES} bytes") from None
        raise CommandError(f"cannot be read ({exc.detail})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError("is not UTF-8") from None


def parse_record(text: str) -> WorkerRecord:
    """The record in a pid file; CommandError naming the field, what was expected and found."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        found = "an empty file" if not text.strip() else shown(text.strip(), 30)
        raise CommandError(
            f"line {exc.lineno}: expected a JSON worker record, found {found}"
        ) from None
    if not isinstance(data, dict):
        raise CommandError(f"expected a JSON object, found {type(data).__name__} {shown(data)}")
    try:
        return WorkerRecord.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "record"
        found = shown(error.get("input")) if error["type"] != "missing" else "nothing"
        raise CommandError(f"field {where!r}: {error['msg'].lower()}, found {found}") from None


def _check_record(path: Path, record: WorkerRecord, state: Path) -> str | None:
    """Why a well-formed record is not a worker of this state folder (None when it is one)."""
    if record.name != path.stem:
        return f"field 'name': expected {path.stem!r} (the file's name), found {shown(record.name)}"
    if record.state != str(state):
        return f"field 'state': expected {str(state)!r}, found {shown(record.state, 300)}"
    if record.name != worker_name(state, record.queue, worker_index(record.name)):
        return (
            f"field 'name': {record.name!r} is not a name this folder gives queue {record.queue!r}"
        )
    return None


def worker_index(name: str) -> int:
    match = NAME_RE.fullmatch(name)
    return int(match.group(1)) if match else 0


def _not_our_worker(record: WorkerRecord) -> tuple[str, bool] | None:
    """Why ``record``'s pid is not the process we started (and whether that is a forgery), or
    None when it is: the same start time, and our worker's name on its command line."""
    now = start_time(record.pid)
    if now is None:
        return f"worker pid {record.pid} is no longer running", False
    if now != record.start_time:
        return f"pid {record.pid} is another process now (it started at another time)", False
    args = command_line(record.pid)
    # anywhere in it: with setproctitle installed Celery retitles the worker "[celeryd: name@host..."
    if args is not None and f"{record.name}@" not in " ".join(args):
        return f"pid {record.pid} is a live process that is not worker {record.name}", True
    return None


def _examine(path: Path, state: Path, scan: Scan) -> None:
    """Sort one pid file into live, ended or refused: an ended worker's file is removed, a file
    that is no record of ours (malformed, another folder's, a live other process) is left in
    place for its owner to look at (``list`` must not destroy what it reports)."""
    try:
        record = parse_record(_read_pid_file(path))
        problem = _check_record(path, record, state)
    except CommandError as exc:
        record, problem = None, str(exc)
    if record is not None and problem is None:
        why = _not_our_worker(record)
        if why is None:
            scan.workers[record.name] = record
            return
        problem, forged = why
        if not forged:
            _remove(path)
            scan.ended.append(f"{path}: {problem}; removed its stale pid file, signalled nothing")
            return
    scan.refused.append(
        f"{path}: {problem}; not a worker record, left in place (look at it, then remove it), "
        "signalled nothing"
    )


def _remove(path: Path) -> None:
    """Remove an ended worker's pid file; leave anything that is not a plain file."""
    with contextlib.suppress(OSError):
        if stat.S_ISREG(path.lstat().st_mode):
            path.unlink()


def scan_state(state: Path) -> Scan:
    """Every pid file named like one of ours; other files in the folder are none of our business."""
    scan = Scan()
    try:
        entries = sorted(state.iterdir())
    except FileNotFoundError:
        return scan
    except OSError as exc:
        raise CommandError(f"{state}: cannot list the state folder ({exc.strerror})") from None
    for path in entries:
        if path.suffix == ".pid" and NAME_RE.fullmatch(path.stem):
            _examine(path, state, scan)
    return scan


def running_workers(state: Path) -> dict[str, int]:
    """Worker name -> pid, for the workers of ``state`` whose process is still that worker."""
    state = resolve_state(state)
    return {name: r.pid for name, r in scan_state(state).workers.items()}


def resolve_state(state: Path) -> Path:
    """The state folder's identity: its absolute path with links resolved."""
    return state.expanduser().resolve()


@contextmanager
def state_lock(state: Path) -> Iterator[None]:
    """One command at a time per state folder: two ``start``s never pick the same names."""
    try:
        state.mkdir(parents=True, exist_ok=True)
        fd = os.open(
            state / LOCK_FILE, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600
        )
    except OSError as exc:
        raise CommandError(f"{state}: cannot use it as the state folder ({exc.strerror})") from None
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except ImportError:
            pass  # no flock (Windows): commands are not serialised there
        yield
    finally:
        os.close(fd)


def write_record(path: Path, record: WorkerRecord) -> None:
    """Create the pid file exclusively, never through a link a stranger planted there."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(path, flags, 0o644), "w", encoding="utf-8") as handle:
        handle.write(record.dumps())


def is_alive(record: WorkerRecord) -> bool:
    return is_same_process(record.pid, record.start_time)


def scan_existing(state: Path) -> Scan:
    """``scan_state`` under the lock, for commands that must not create a missing folder."""
    if not state.is_dir():
        return Scan()
    with state_lock(state):
        return scan_state(state)
