"""Start, list and stop this project's Celery workers: ``python -m crucible_dagster.dagster_plugin.celery.workers``.

``start -n 2`` starts two workers in the background, each one process (Celery's ``solo``
pool: one step at a time, and a killed worker takes no orphaned child with it), each named
``crucible-<key>-w<N>@<host>``, where ``<key>`` is derived from the state folder and the queue,
so two checkouts (or two queues) on one broker never share a worker name. Each logs to
``<state>/<name>.log``. The state folder (``$DAGSTER_HOME/celery_workers`` by default) holds
their pid files; ``stop`` ends them with a warm shutdown (the running step finishes) and kills
what is left after ``--timeout``.

A pid file (``pidfiles.py``) is a JSON record of the one process it names; a command acts only
on a pid whose process is still that worker, removes the file of a worker that ended and
reports (never signals) anything else.

A worker runs steps against the instance named in each step's message (the run's own, e.g.
PostgreSQL) and resolves run directories from its environment, so start the workers with
the same ``CRUCIBLE_ARTIFACTS_DIR`` (and broker settings) as the runs.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import time
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from crucible_dagster.common.processes import signal_process, start_time
from crucible_dagster.dagster_plugin.celery.pidfiles import (
    LOCK_FILE,
    NAME_RE,
    PID_SCHEMA,
    CommandError,
    Scan,
    WorkerRecord,
    is_alive,
    node_name,
    resolve_state,
    running_workers,
    scan_existing,
    scan_state,
    shown,
    state_lock,
    worker_index,
    worker_name,
    write_record,
)
from crucible_dagster.dagster_plugin.celery.settings import (
    DEFAULT_QUEUE,
    CelerySettings,
    missing_extra,
    queue_problem,
)

#: what scripts, benchmarks and tests import from here (the pid-file names live in pidfiles.py)
__all__ = [
    "LOCK_FILE",
    "NAME_RE",
    "PID_SCHEMA",
    "CommandError",
    "Scan",
    "Started",
    "WorkerRecord",
    "main",
    "resolve_state",
    "running_workers",
    "scan_existing",
    "scan_state",
    "start_worker",
    "stop_workers",
    "wait_until_ready",
    "worker_name",
]

APP = "crucible_dagster.dagster_plugin.celery.app"
MAX_WORKERS = 64


def state_dir(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit)
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise CommandError("set DAGSTER_HOME (the instance the runs use) or pass --state-dir")
    return Path(home) / "celery_workers"


@dataclass
class Started:
    """A worker this command started, until it answers the ping or is given up on."""

    record: WorkerRecord
    process: subprocess.Popen[bytes]
    log: Path


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
    taken = {worker_index(name) for name in live}
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
    while time.monotonic() < deadline and any(is_alive(r) for r in records):
        time.sleep(0.1)
    for record in records:
        if is_alive(record):
            signal_process(record.pid, record.start_time, signal.SIGKILL)
    kill_deadline = time.monotonic() + 5.0
    while time.monotonic() < kill_deadline and any(is_alive(r) for r in records):
        time.sleep(0.05)
    stopped = []
    for record in records:
        if not is_alive(record):
            (state / f"{record.name}.pid").unlink(missing_ok=True)
            stopped.append(record.name)
    return stopped


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
