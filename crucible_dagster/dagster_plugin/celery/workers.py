"""Start, list and stop this project's Celery workers: ``python -m crucible_dagster.dagster_plugin.celery.workers``.

``start -n 2`` starts two workers in the background, each one process (Celery's ``solo``
pool: one step at a time, and a killed worker takes no orphaned child with it), each named
``crucible-<key>-w<N>@<host>``, where ``<key>`` is derived from the state folder and the queue,
so two checkouts (or two queues) on one broker never share a worker name. Each logs to
``<state>/<name>.log``. The state folder (``$DAGSTER_HOME/celery_workers`` by default) holds
their pid files; ``stop`` ends them with a warm shutdown (the running step finishes) and kills
what is left after ``--timeout``.

A pid file is a JSON record: the pid, the process's start time, its name, queue and state
folder. A command acts only on a pid whose process is still that worker (same start time, same
name on its command line). The file of a worker that ended is removed; anything else is
reported, left in place and never signalled.

A worker runs steps against the instance named in each step's message (the run's own, e.g.
PostgreSQL) and resolves run directories from its environment, so start the workers with
the same ``CRUCIBLE_ARTIFACTS_DIR`` (and broker settings) as the runs.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import typing
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crucible_dagster.common.processes import (
    MAX_PID,
    MIN_MANAGED_PID,
    command_line,
    is_same_process,
    signal_process,
    start_time,
)
from crucible_dagster.dagster_plugin.celery.settings import (
    DEFAULT_QUEUE,
    QUEUE_PATTERN,
    CelerySettings,
    missing_extra,
    queue_problem,
)

APP = "crucible_dagster.dagster_plugin.celery.app"
PID_SCHEMA = "crucible-worker/1"
#: a pid file is a few hundred bytes; anything far larger is not one of ours
MAX_PID_FILE_BYTES = 4096
MAX_WORKERS = 64
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


def state_dir(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit)
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise CommandError("set DAGSTER_HOME (the instance the runs use) or pass --state-dir")
    return Path(home) / "celery_workers"


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
        fd = os.open(
            path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        )
    except OSError as exc:
        raise CommandError(f"cannot be read ({exc.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CommandError("is not a regular file")
        data = os.read(fd, MAX_PID_FILE_BYTES + 1)
    except OSError as exc:
        raise CommandError(f"cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > MAX_PID_FILE_BYTES:
        raise CommandError(f"is larger than {MAX_PID_FILE_BYTES} bytes")
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
    if record.name != worker_name(state, record.queue, _index(record.name)):
        return (
            f"field 'name': {record.name!r} is not a name this folder gives queue {record.queue!r}"
        )
    return None


def _index(name: str) -> int:
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


@dataclass
class Started:
    """A worker this command started, until it answers the ping or is given up on."""

    record: WorkerRecord
    process: subprocess.Popen[bytes]
    log: Path


def write_record(path: Path, record: WorkerRecord) -> None:
    """Create the pid file exclusively, never through a link a stranger planted there."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(path, flags, 0o644), "w", encoding="utf-8") as handle:
        handle.write(record.dumps())


def start_worker(state: Path, index: int, *, queue: str = DEFAULT_QUEUE) -> Started:
    """One worker process in its own session (so a terminal's Ctrl-C does not reach it),
    consuming ``queue`` (several: comma-separated)."""
    problem = queue_problem(queue)
    if problem:
        raise CommandError(f"queue: {problem}")
    state = resolve_state(state)
    state.mkdir(parents=True, exist_ok=True)
    name = worker_name(state, queue, index)
    command = [
        sys.executable, "-m", "celery", "-A", APP, "worker",
        "--pool=solo", "--loglevel=INFO", "-Q", queue, "-n", node_name(name),
    ]  # fmt: skip
    log_path = state / f"{name}.log"
    # appended to, never through a link planted in its place (nothing outside the folder is written)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(log_path, flags, 0o644), "ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    # our child cannot be reaped before we wait for it: its start time is readable now
    started = start_time(process.pid) or "unknown"
    record = WorkerRecord.model_validate(
        {"schema": PID_SCHEMA, "pid": process.pid, "start_time": started, "name": name,
         "queue": queue, "state": str(state)}
    )  # fmt: skip
    write_record(state / f"{name}.pid", record)
    return Started(record, process, log_path)


def free_indices(state: Path, queue: str, live: Sequence[str], count: int) -> list[int]:
    """The ``count`` lowest worker numbers with no live worker and no file in the way."""
    taken = {_index(name) for name in live}
    found: list[int] = []
    index = 0
    while len(found) < count:
        index += 1
        name = worker_name(state, queue, index)
        if index in taken or os.path.lexists(state / f"{name}.pid"):
            continue
        found.append(index)
    return found


def _answering(pending: dict[str, Started], timeout: float) -> set[str]:
    """The workers among ``pending`` that answered on the broker within ``timeout`` seconds,
    as the very process we started: a reply carries the worker's pid (``stats``), so a stray
    worker of the same name elsewhere is never taken for ours."""
    from crucible_dagster.dagster_plugin.celery.app import app

    nodes = {node_name(name): name for name in pending}
    try:
        inspect = app.control.inspect(destination=list(nodes), timeout=timeout)
        replies = inspect.stats() or {}
    except Exception:  # an unreachable broker is "no answer yet"
        time.sleep(timeout)
        return set()
    return {
        nodes[node]
        for node, stats in replies.items()
        if node in nodes
        and isinstance(stats, dict)
        and stats.get("pid") == pending[nodes[node]].process.pid
    }


def _reap_dead(pending: dict[str, Started], problems: list[str]) -> None:
    """Drop the workers that exited before answering, with their pid files."""
    for name, worker in list(pending.items()):
        code = worker.process.poll()
        if code is not None:
            del pending[name]
            (worker.log.parent / f"{name}.pid").unlink(missing_ok=True)
            problems.append(f"{name} exited with code {code} before it was ready: see {worker.log}")


def wait_until_ready(
    state: Path, started: Sequence[Started], timeout: float = 60.0
) -> tuple[list[Started], list[str]]:
    """The workers that answered on the broker while their process was alive, and a line for
    each that did not (died first, or stayed silent until ``timeout``: those are stopped)."""
    state = resolve_state(state)
    deadline = time.monotonic() + timeout
    pending = {s.record.name: s for s in started}
    ready: list[Started] = []
    problems: list[str] = []
    while pending:
        _reap_dead(pending, problems)
        if not pending or time.monotonic() >= deadline:
            break
        wait = min(1.0, max(0.1, deadline - time.monotonic()))
        for name in _answering(pending, wait):
            if pending[name].process.poll() is None:
                ready.append(pending.pop(name))
    for name, worker in pending.items():
        problems.append(
            f"{name} did not answer on the broker within {timeout:g} s: stopped it; "
            f"see {worker.log}"
        )
    if pending:
        stop_records(state, [w.record for w in pending.values()], 5.0)
    return ready, problems


def stop_records(state: Path, records: Sequence[WorkerRecord], timeout: float) -> list[str]:
    """Warm shutdown (SIGTERM: the running step ends first), then SIGKILL after ``timeout``.

    Each signal goes only to the process the record names (pid and start time checked)."""
    for record in records:
        signal_process(record.pid, record.start_time, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(r) for r in records):
        time.sleep(0.1)
    for record in records:
        if _alive(record):
            signal_process(record.pid, record.start_time, signal.SIGKILL)
    kill_deadline = time.monotonic() + 5.0
    while time.monotonic() < kill_deadline and any(_alive(r) for r in records):
        time.sleep(0.05)
    stopped = []
    for record in records:
        if not _alive(record):
            (state / f"{record.name}.pid").unlink(missing_ok=True)
            stopped.append(record.name)
    return stopped


def _alive(record: WorkerRecord) -> bool:
    return is_same_process(record.pid, record.start_time)


def stop_command(state: Path, timeout: float) -> tuple[Scan, list[str]]:
    """Stop every live worker of ``state`` (a missing folder is not created); the names stopped."""
    if not state.is_dir():
        return Scan(), []
    with state_lock(state):
        scan = scan_state(state)
        return scan, stop_records(state, list(scan.workers.values()), timeout)


def stop_workers(state: Path, timeout: float = 30.0) -> list[str]:
    """Stop every live worker of ``state``; the names stopped (for scripts and benchmarks)."""
    return stop_command(resolve_state(state), timeout)[1]


def scan_existing(state: Path) -> Scan:
    """``scan_state`` under the lock, for commands that must not create a missing folder."""
    if not state.is_dir():
        return Scan()
    with state_lock(state):
        return scan_state(state)


def count_arg(text: str) -> int:
    """``-n``: how many workers, 1 to MAX_WORKERS."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, found {shown(text)}") from None
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_WORKERS} workers, found {value}")
    return value


def seconds_arg(text: str) -> float:
    """``--timeout``: a finite number of seconds above 0 (at most a day)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, found {shown(text)}") from None
    if not (math.isfinite(value) and 0 < value <= 86400):
        raise argparse.ArgumentTypeError(f"expected seconds above 0 and up to 86400, found {text}")
    return value


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 1 like every other refusal."""

    def error(self, message: str) -> typing.NoReturn:
        raise CommandError(f"{self.prog}: {message}")


def build_parser() -> Parser:
    parser = Parser(prog="python -m crucible_dagster.dagster_plugin.celery.workers")
    parser.add_argument(
        "--state-dir", help="pid and log files (default $DAGSTER_HOME/celery_workers)"
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    start = commands.add_parser("start", help="start N workers in the background")
    start.add_argument("-n", "--count", type=count_arg, default=2)
    start.add_argument("-q", "--queue", help="default: $CRUCIBLE_CELERY_QUEUE, else 'dagster'")
    start.add_argument("--timeout", type=seconds_arg, default=60.0, help="seconds to wait")
    stop = commands.add_parser("stop", help="stop every worker started here")
    stop.add_argument("--timeout", type=seconds_arg, default=30.0)
    commands.add_parser("list", help="the workers running, with their pids")
    return parser


def start_all(state: Path, queue: str, indices: Sequence[int]) -> list[Started]:
    """Start one worker per index; if one cannot start, stop those already started and say why."""
    started: list[Started] = []
    try:
        for index in indices:
            started.append(start_worker(state, index, queue=queue))
    except OSError as exc:
        stop_records(state, [w.record for w in started], 5.0)
        where = exc.filename or state
        raise CommandError(
            f"{where}: cannot start a worker ({exc.strerror}); none left running"
        ) from None
    return started


def start_command(state: Path, count: int, queue: str, timeout: float) -> tuple[int, Scan]:
    """Start ``count`` workers on ``queue``; exit 1 unless every one answered the ping."""
    problem = queue_problem(queue)
    if problem:
        raise CommandError(f"queue: {problem}")
    try:
        import crucible_dagster.dagster_plugin.celery.app  # noqa: F401 - what the workers run
    except ImportError:
        raise CommandError(str(missing_extra())) from None
    with state_lock(state):
        scan = scan_state(state)
        live = [r.name for r in scan.workers.values() if r.queue == queue]
        started = start_all(state, queue, free_indices(state, queue, live, count))
        ready, problems = wait_until_ready(state, started, timeout)
    from kombu.utils.url import maybe_sanitize_url

    broker = maybe_sanitize_url(settings_from_env().broker)
    names = ", ".join(w.record.name for w in ready) or "none"
    print(f"workers {names} ready on {broker} queue {queue!r} (logs in {state})")
    for line in problems:
        print(line, file=sys.stderr)
    return (1 if problems else 0), scan


def settings_from_env() -> CelerySettings:
    try:
        return CelerySettings.from_env()
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    state = resolve_state(state_dir(args.state_dir))
    if args.command == "start":
        queue = args.queue or settings_from_env().queue
        code, scan = start_command(state, args.count, queue, args.timeout)
    elif args.command == "stop":
        scan, stopped = stop_command(state, args.timeout)
        left = sorted(set(scan.workers) - set(stopped))
        print(f"stopped {', '.join(stopped) or 'no workers'}")
        for name in left:
            print(f"{name} (pid {scan.workers[name].pid}) is still running", file=sys.stderr)
        code = 1 if left else 0
    else:
        scan = scan_existing(state)
        for name, record in scan.workers.items():
            print(f"{name}\tpid {record.pid}\tqueue {record.queue}")
        code = 0
    for line in scan.ended:
        print(f"note: {line}", file=sys.stderr)
    for line in scan.refused:
        print(f"error: {line}", file=sys.stderr)
    return 1 if scan.refused else code


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(argv)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the state folder itself failing under us (full disk, permissions)
        print(f"error: {exc.filename or 'state folder'}: {exc.strerror}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
