from __future__ import annotations

import atexit
import gc
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

from crucible_dagster.cli import main

ROOT = Path(__file__).resolve().parent.parent

# CI replays the same examples every run (a red build must be reproducible); locally,
# hypothesis keeps exploring new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-dagster",
        action="store_true",
        help="fail collection, or the test, that imports dagster (make test-fast: its workers "
        "never pay Dagster's 2 s import; a test that needs Dagster is marked integration)",
    )


def _dagster_loaded() -> bool:
    return "dagster" in sys.modules


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.getoption("no_dagster") and _dagster_loaded():
        pytest.exit(
            "--no-dagster: collecting the tests imported dagster; import it inside the tests "
            "that need it (marked integration), never at a test module's top",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )


NO_DAGSTER_BEFORE = pytest.StashKey[bool]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[NO_DAGSTER_BEFORE] = not _dagster_loaded()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> object:
    result = yield
    newly = item.stash.get(NO_DAGSTER_BEFORE, False) and _dagster_loaded()
    if newly and item.config.getoption("no_dagster"):
        pytest.fail(f"--no-dagster: {item.nodeid} imported dagster: mark it integration")
    return result


def pytest_configure(config: pytest.Config) -> None:
    """No test reads or writes the checkout's Dagster instance.

    ``make`` exports DAGSTER_HOME=.dagster_home for the demo and the UI. Under ``make test`` the
    history would then read the demo's runs into unit tests, and two xdist workers would share
    its SQLite files; a test that needs an instance makes its own under ``tmp_path``. Dagster's
    migration scripts are parsed once per process (``tests.migration_scripts``).
    """
    os.environ.pop("DAGSTER_HOME", None)
    signals_as_from_a_terminal()
    if not config.getoption("no_dagster"):
        from tests.migration_scripts import parse_once

        parse_once()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        atexit.register(_exit_without_teardown)


def _exit_without_teardown() -> None:
    """An xdist worker's last act once it has reported every test and the atexit handlers
    registered after this one (the browsers', Dagster's) have run; logging is shut down here,
    as its own earlier handler would: the interpreter's teardown (freeing what two thousand
    tests left, module by module) took 2.5 s of the 17 s of ``make test-fast``, with the
    controller waiting on it."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


#: Markers of the tests that take longest (live servers first): these start first, so that with
#: pytest-xdist no worker is left with a two-minute test after the others have finished.
LONG_FIRST = ("live", "integration", "postgres", "slow")


@pytest.hookimpl(trylast=True)  # after tests/integration/conftest.py has added its marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long tests first, the order otherwise kept (every xdist worker sorts alike)."""

    def rank(item: pytest.Item) -> int:
        marks = {mark.name for mark in item.iter_markers()}
        return next((i for i, name in enumerate(LONG_FIRST) if name in marks), len(LONG_FIRST))

    items.sort(key=rank)


@pytest.fixture(autouse=True)
def artifacts_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test writes its run directories into its own temporary folder."""
    path = tmp_path / "artifacts"
    monkeypatch.setenv("CRUCIBLE_ARTIFACTS_DIR", str(path))
    return path


@pytest.fixture(autouse=True)
def unfrozen_collector() -> Iterator[None]:
    """Loading definitions freezes everything then alive (a code location loads once); this
    process loads hundreds of times, so each test hands the frozen objects back afterwards."""
    yield
    gc.unfreeze()


def signals_as_from_a_terminal() -> None:
    """SIGINT and SIGTERM handled in this process as in one started from a terminal, so that
    every child starts with them at their defaults.

    A shell's background job (``make test &``, CI runners) starts with SIGINT ignored, and an
    ignored signal, unlike a handler, stays ignored across exec: a Python child then installs
    no KeyboardInterrupt handler, and Dagster, which maps SIGTERM to SIGINT's handler in every
    process that runs a job or serves code (a server, a run, this process after
    ``execute_in_process``), ignores SIGTERM too; a server a test started sat out its stop.
    Set here once, not in each child by a ``preexec_fn``: that makes ``subprocess`` fork
    instead of vfork, and fork runs gRPC's fork handlers, which hung a test process that had
    pinged a code server.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def finish_together(
    procs: list[subprocess.Popen[str]], timeout: float
) -> list[tuple[int, str, str]]:
    """Each process's (exit code, stdout, stderr), all bounded by one ``timeout``: a process
    still running then is killed, with the others, and the test fails saying which. Reading
    both pipes as it waits (``communicate``), so a child that writes much never blocks on a full
    pipe while the test waits for it to exit."""
    deadline = time.monotonic() + timeout
    results: list[tuple[int, str, str]] = []
    try:
        for number, proc in enumerate(procs, start=1):
            try:
                out, err = proc.communicate(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(
                    f"process {number} of {len(procs)} ({proc.args!r}) ran past {timeout} s"
                )
            results.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return results


@dataclass
class Said:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


Cli = Callable[..., Said]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    def run(*args: str | Path) -> Said:
        previous = signal.getsignal(signal.SIGTERM)
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            signal.signal(signal.SIGTERM, previous)
        said = capsys.readouterr()
        result = Said(code, said.out, said.err)
        assert "Traceback" not in result.text, result.text
        return result

    return run
