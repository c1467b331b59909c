"""Start, list and stop this project's Celery workers: ``python -m crucible_dagster.dagster_plugin.workers``.

``start -n 2`` starts two workers in the background, each one process (Celery's ``solo``
pool: one step at a time, and a killed worker takes no orphaned child with it), each named
``crucible-w<N>@<host>``, logging to ``<state>/w<N>.log``. The state folder
(``$DAGSTER_HOME/celery_workers`` by default) holds their pid files; ``stop`` ends them with a
warm shutdown (the running step finishes) and kills what is left after ``--timeout``.

A worker runs steps against the instance named in each step's message (the run's own, e.g.
PostgreSQL) and resolves run directories from its environment, so start the workers with
the same ``CRUCIBLE_ARTIFACTS_DIR`` (and broker settings) as the runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from crucible_dagster.common.processes import pid_alive
from crucible_dagster.dagster_plugin.celery_settings import DEFAULT_QUEUE, CelerySettings

APP = "crucible_dagster.dagster_plugin.celery_app"


def state_dir(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit)
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise SystemExit("set DAGSTER_HOME (the instance the runs use) or pass --state-dir")
    return Path(home) / "celery_workers"


def worker_name(index: int) -> str:
    return f"crucible-w{index}"


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def running_workers(state: Path) -> dict[str, int]:
    """Worker name -> pid, for the workers whose process is alive."""
    found = {}
    for pidfile in sorted(state.glob("*.pid")):
        pid = _pid(pidfile)
        if pid is not None and pid_alive(pid):
            found[pidfile.stem] = pid
    return found


def start_worker(state: Path, index: int, *, queue: str = DEFAULT_QUEUE) -> subprocess.Popen[bytes]:
    """One worker process in its own session (so a terminal's Ctrl-C does not reach it)."""
    state.mkdir(parents=True, exist_ok=True)
    name = worker_name(index)
    command = [
        sys.executable, "-m", "celery", "-A", APP, "worker",
        "--pool=solo", "--loglevel=INFO", "-Q", queue, "-n", f"{name}@%h",
    ]  # fmt: skip
    with open(state / f"{name}.log", "ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    (state / f"{name}.pid").write_text(f"{process.pid}\n")
    return process


def wait_until_ready(names: Sequence[str], timeout: float = 60.0) -> list[str]:
    """The workers among ``names`` that answered a ping on the broker within ``timeout``."""
    from crucible_dagster.dagster_plugin.celery_app import app

    deadline = time.monotonic() + timeout
    answered: set[str] = set()
    while time.monotonic() < deadline and len(answered) < len(names):
        for reply in app.control.ping(timeout=1.0) or []:
            answered.update(node.split("@", 1)[0] for node in reply)
        time.sleep(0.2)
    return [n for n in names if n in answered]


def stop_workers(state: Path, timeout: float = 30.0) -> list[str]:
    """Warm shutdown for every worker (SIGTERM: the running step ends first), then SIGKILL."""
    workers = running_workers(state)
    for pid in workers.values():
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(p) for p in workers.values()):
        time.sleep(0.2)
    for pid in workers.values():
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    for name in workers:
        (state / f"{name}.pid").unlink(missing_ok=True)
    return list(workers)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crucible_dagster.dagster_plugin.workers")
    parser.add_argument(
        "--state-dir", help="pid and log files (default $DAGSTER_HOME/celery_workers)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start N workers in the background")
    start.add_argument("-n", "--count", type=int, default=2)
    start.add_argument("-q", "--queue", help="default: $CRUCIBLE_CELERY_QUEUE, else 'dagster'")
    start.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for them")
    stop = commands.add_parser("stop", help="stop every worker started here")
    stop.add_argument("--timeout", type=float, default=30.0)
    commands.add_parser("list", help="the workers running, with their pids")
    args = parser.parse_args(argv)
    state = state_dir(args.state_dir)
    settings = CelerySettings.from_env()
    if args.command == "start":
        running = running_workers(state)
        first = 1 + max((int(n.removeprefix("crucible-w")) for n in running), default=0)
        names = []
        for index in range(first, first + args.count):
            start_worker(state, index, queue=args.queue or settings.queue)
            names.append(worker_name(index))
        ready = wait_until_ready(names, args.timeout)
        from kombu.utils.url import maybe_sanitize_url

        broker = maybe_sanitize_url(settings.broker)
        print(f"workers {', '.join(ready) or 'none'} ready on {broker} (logs in {state})")
        if len(ready) < len(names):
            missing = sorted(set(names) - set(ready))
            print(f"no answer from {', '.join(missing)}: see their logs", file=sys.stderr)
            return 1
        return 0
    if args.command == "stop":
        stopped = stop_workers(state, args.timeout)
        print(f"stopped {', '.join(stopped) or 'no workers'}")
        return 0
    for name, pid in running_workers(state).items():
        print(f"{name}\tpid {pid}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
