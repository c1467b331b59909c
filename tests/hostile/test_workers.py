"""Hostile cases for the workers command: it acts only on the Celery workers it started.

Pid files here are planted by hand: another live process's pid (a real ``sleep 60``), pids
0, 1, negative and huge, text that is no JSON record, a directory or FIFO in a pid file's place,
a record of another state folder. Each case checks the exit code, the one line naming the file
and field, that nothing was signalled (the ``sleep`` is still alive), and what the folder holds
afterwards. The broker cases (a worker that dies before it is ready, a run whose queue nobody
consumes) need RabbitMQ on 127.0.0.1:5672: they skip without it, and fail under CI.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crucible_dagster.common.processes import pid_alive, signal_process, start_time
from crucible_dagster.dagster_plugin.celery import workers
from crucible_dagster.dagster_plugin.celery.workers import PID_SCHEMA, main, worker_name
from tests.conftest import ROOT, Said, subprocess_env
from tests.hostile.conftest import snapshot
from tests.services import Deployment, broker, deployment, postgres_db, sweep_yaml, write_experiment

__all__ = ["broker", "deployment", "postgres_db"]  # fixtures, used by name

QUEUE = "dagster"
Run = Callable[..., Said]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    folder = (tmp_path / "celery_workers").resolve()
    folder.mkdir()
    return folder


@pytest.fixture
def run(state: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    """The workers command in this process, on ``state``; never a traceback."""

    def command(*args: str) -> Said:
        code = main(["--state-dir", str(state), *args])
        said = capsys.readouterr()
        result = Said(code, said.out, said.err)
        assert "Traceback" not in result.text, result.text
        return result

    return command


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """A live process that is none of our workers: every command must leave it running."""
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


def pid_path(state: Path, index: int = 1, queue: str = QUEUE) -> Path:
    return state / f"{worker_name(state, queue, index)}.pid"


def record(state: Path, pid: int, started: str, index: int = 1) -> dict[str, object]:
    return {
        "schema": PID_SCHEMA,
        "pid": pid,
        "start_time": started,
        "name": worker_name(state, QUEUE, index),
        "queue": QUEUE,
        "state": str(state),
    }


def error_lines(said: Said) -> list[str]:
    return [line for line in said.err.splitlines() if line.startswith("error:")]


def test_stop_spares_a_live_process_named_by_a_bare_pid(
    state: Path, run: Run, bystander: subprocess.Popen[bytes]
) -> None:
    """The found bug: a pid file holding another process's pid got it killed."""
    path = pid_path(state)
    path.write_text(f"{bystander.pid}\n")
    said = run("stop")
    assert said.code == 1
    (line,) = error_lines(said)
    assert str(path) in line and "expected a JSON object, found int" in line
    assert "signalled nothing" in line
    time.sleep(0.1)
    assert bystander.poll() is None  # still running
    assert path.read_text() == f"{bystander.pid}\n"  # reported, left for the user to look at


def test_stop_spares_a_record_forged_with_another_process_start_time(
    state: Path, run: Run, bystander: subprocess.Popen[bytes]
) -> None:
    """Pid and start time both right, but its command line is no worker of ours: refused."""
    started = start_time(bystander.pid)
    assert started is not None
    path = pid_path(state)
    path.write_text(json.dumps(record(state, bystander.pid, started)))
    said = run("stop")
    assert said.code == 1 and said.out.strip() == "stopped no workers"
    (line,) = error_lines(said)
    assert str(path) in line and f"pid {bystander.pid} is a live process that is not" in line
    time.sleep(0.1)
    assert bystander.poll() is None
    assert path.is_file()  # a forgery is evidence: left in place


def test_a_worker_retitled_by_setproctitle_is_still_recognised(state: Path, run: Run) -> None:
    """With setproctitle installed Celery rewrites its command line to ``[celeryd: name@host:...]``:
    still our worker, listed and stopped (a stand-in process carries that title here)."""
    name = worker_name(state, QUEUE, 1)
    title = f"[celeryd: {name}@{socket.gethostname()}:MainProcess] -active-"
    process = subprocess.Popen(["bash", "-c", f"exec -a '{title}' sleep 60"])
    try:
        deadline = time.monotonic() + 5
        cmdline = Path(f"/proc/{process.pid}/cmdline")
        while time.monotonic() < deadline and not cmdline.read_text().startswith("[celeryd:"):
            time.sleep(0.02)  # until bash has exec'd into the retitled sleep
        assert cmdline.read_text().startswith("[celeryd:")
        pid_path(state).write_text(
            json.dumps(record(state, process.pid, start_time(process.pid) or ""))
        )
        listed = run("list")
        assert listed.code == 0 and listed.out == f"{name}\tpid {process.pid}\tqueue {QUEUE}\n"
        stopped = run("stop", "--timeout", "5")
        assert stopped.code == 0 and stopped.out.strip() == f"stopped {name}"
        assert process.wait(timeout=5) == -15  # SIGTERM, the warm shutdown
    finally:
        process.kill()
        process.wait()


def test_a_reused_pid_is_reported_stale_and_spared(
    state: Path, run: Run, bystander: subprocess.Popen[bytes]
) -> None:
    """A worker that died (a reboot) and whose pid went to another process: a stale note."""
    path = pid_path(state)
    path.write_text(json.dumps(record(state, bystander.pid, "proc:1")))
    said = run("list")
    assert said.code == 0 and said.out == ""
    assert f"{path}: pid {bystander.pid} is another process now" in said.err
    said = run("stop")
    time.sleep(0.1)
    assert bystander.poll() is None
    assert not path.exists()


@pytest.mark.parametrize(
    ("pid", "expected"),
    [
        (0, "greater than or equal to 2"),
        (1, "greater than or equal to 2"),
        (-1, "greater than or equal to 2"),
        (-4242, "greater than or equal to 2"),
        (2**40, "less than or equal to 4194304"),
        ("123", "valid integer"),
        (1.0, "valid integer"),
        (True, "valid integer"),
        (None, "valid integer"),
    ],
)
def test_pid_fields_that_name_no_single_process_are_refused(
    state: Path, run: Run, pid: object, expected: str
) -> None:
    """0 and -1 are a process group and everyone to ``kill``; 1 is init; none is signalled."""
    path = pid_path(state)
    data = record(state, 0, "proc:1")
    data["pid"] = pid
    path.write_text(json.dumps(data))
    said = run("stop")
    assert said.code == 1
    (line,) = error_lines(said)
    assert line.startswith(f"error: {path}: field 'pid': ") and expected in line
    assert path.is_file()  # reported, left in place


@pytest.mark.slow
def test_stop_with_pid_zero_leaves_its_own_process_group_alive(state: Path) -> None:
    """``kill(0, SIGTERM)`` would end the command's own group: it must exit 1, not by a signal."""
    pid_path(state).write_text(json.dumps(record(state, 0, "proc:1")))
    pid_path(state, 2).write_text("0\n")
    pid_path(state, 3).write_text("-1\n")
    done = subprocess.run(
        [sys.executable, "-m", "crucible_dagster.dagster_plugin.celery.workers", "--state-dir",
         str(state), "stop", "--timeout", "1"],
        env=subprocess_env(), cwd=ROOT, capture_output=True, text=True, timeout=60,
        start_new_session=True,
    )  # fmt: skip
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert len(done.stderr.splitlines()) == 3 and "Traceback" not in done.stderr


def test_signal_process_refuses_pids_below_two() -> None:
    """The last line of defence, below any pid file parsing."""
    for pid in (0, 1, -1, -os.getpid()):
        assert signal_process(pid, start_time(os.getpid()) or "x", 0) is False
    assert pid_alive(0) is False and pid_alive(-1) is False and pid_alive(True) is False


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "expected a JSON worker record, found an empty file"),
        (b"abc\n", "expected a JSON worker record, found 'abc'"),
        (b'{"pid": 12', "line 1: expected a JSON worker record, found '{\"pid\": 12'"),
        (b"[1, 2]", "expected a JSON object, found list"),
        (b'"1234"', "expected a JSON object, found str"),
        (b'{"pid": 1234}', "field 'start_time': field required"),
        (b"\xff\xfe\x00", "is not UTF-8"),
        (b"{" * 10_000, "larger than 4096 bytes"),
        (b'{"pid": 3, "x": 1}', "field 'start_time'"),
    ],
)
def test_pid_files_of_the_wrong_shape_are_refused_and_left_in_place(
    state: Path, run: Run, content: bytes, expected: str
) -> None:
    path = pid_path(state)
    path.write_bytes(content)
    said = run("list")
    assert said.code == 1 and said.out == ""
    (line,) = error_lines(said)
    assert line.startswith(f"error: {path}: ") and expected in line, line
    assert path.read_bytes() == content  # list destroys nothing it reports


def test_list_reports_a_bad_pid_file_every_time_and_removes_only_an_ended_workers(
    state: Path, run: Run, bystander: subprocess.Popen[bytes]
) -> None:
    """Attack b, B12: ``list`` used to delete every pid file it could not use ("file
    removed"), so the second ``list`` was clean and the evidence gone. An ended worker's record
    is still removed with a note (the README's stale case)."""
    bad, ended = pid_path(state, 1), pid_path(state, 2)
    bad.write_text("not json\n")
    ended.write_text(json.dumps(record(state, bystander.pid, "proc:1", 2)))
    first, second = run("list"), run("list")
    for said in (first, second):
        assert said.code == 1
        (line,) = error_lines(said)
        assert line.startswith(f"error: {bad}: line 1: expected a JSON worker record")
        assert "left in place" in line and "removed" not in line.split("left in place")[0]
    assert f"note: {ended}: pid {bystander.pid} is another process now" in first.err
    assert bad.read_text() == "not json\n" and not ended.exists()


def test_a_symlinked_pid_file_is_reported_as_a_symlink_and_left_alone(
    state: Path, run: Run, tmp_path: Path, bystander: subprocess.Popen[bytes]
) -> None:
    """Before: "cannot be read (Too many levels of symbolic links)". A valid record behind the
    link is not followed, its process not signalled, the link and its target left as they were."""
    target = tmp_path / "elsewhere.pid"
    target.write_text(json.dumps(record(state, bystander.pid, start_time(bystander.pid) or "")))
    link = pid_path(state)
    link.symlink_to(target)
    said = run("stop")
    assert said.code == 1
    (line,) = error_lines(said)
    assert line.startswith(f"error: {link}: is a symlink (a pid file is never followed)"), line
    time.sleep(0.1)
    assert bystander.poll() is None
    assert link.is_symlink() and target.is_file()


def test_control_characters_in_a_pid_file_are_escaped(state: Path, run: Run) -> None:
    path = pid_path(state)
    data = record(state, 1234, "proc:1")
    data["queue"] = "evil\x1b[2J\rqueue"
    path.write_text(json.dumps(data))
    said = run("list")
    assert said.code == 1
    (line,) = error_lines(said)
    assert "field 'queue'" in line and "\\x1b[2J\\r" in line
    assert "\x1b" not in said.err and "\r" not in said.err


def test_a_record_from_another_state_folder_is_refused(
    state: Path, run: Run, tmp_path: Path, bystander: subprocess.Popen[bytes]
) -> None:
    """A pid file copied from another checkout names its own folder: not ours to signal."""
    other = tmp_path / "other"
    data = record(state, bystander.pid, start_time(bystander.pid) or "")
    data["state"] = str(other)
    path = pid_path(state)
    path.write_text(json.dumps(data))
    said = run("stop")
    assert said.code == 1
    (line,) = error_lines(said)
    assert f"field 'state': expected {str(state)!r}, found {str(other)!r}" in line
    assert bystander.poll() is None and path.is_file()


def test_a_record_whose_name_is_not_its_file_is_refused(
    state: Path, run: Run, bystander: subprocess.Popen[bytes]
) -> None:
    """A record copied under another worker's file name does not match the folder it sits in."""
    path = pid_path(state, 1)
    path.write_text(json.dumps(record(state, bystander.pid, start_time(bystander.pid) or "", 2)))
    said = run("stop")
    assert said.code == 1
    (line,) = error_lines(said)
    assert f"{path}: field 'name': expected {path.stem!r} (the file's name)" in line
    assert bystander.poll() is None and path.is_file()


def test_a_directory_or_fifo_in_a_pid_file_place_is_left_alone(state: Path, run: Run) -> None:
    directory, fifo = pid_path(state, 1), pid_path(state, 2)
    directory.mkdir()
    (directory / "keep.txt").write_text("mine")
    os.mkfifo(fifo)
    said = run("list")  # a FIFO opened without O_NONBLOCK would hang here
    assert said.code == 1
    lines = error_lines(said)
    assert len(lines) == 2 and all("is not a regular file" in line for line in lines)
    assert (directory / "keep.txt").read_text() == "mine" and fifo.exists()


def test_unknown_files_in_the_state_folder_are_ignored(state: Path, run: Run) -> None:
    (state / "notes.txt").write_text("mine")
    (state / "other.pid").write_text("1\n")
    (state / "crucible-w1.pid").write_text("1\n")  # an old-style name: not one of ours now
    before = snapshot(state)
    said = run("stop")
    assert said.code == 0 and said.err == ""
    after = snapshot(state)
    after.pop(workers.LOCK_FILE, None)
    assert after == before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("start", "-n", "0"), "expected 1 to 64 workers, found 0"),
        (("start", "-n", "-3"), "expected 1 to 64 workers, found -3"),
        (("start", "-n", "10000"), "expected 1 to 64 workers, found 10000"),
        (("start", "-n", "two"), "expected a whole number, found 'two'"),
        (("start", "--timeout", "nan"), "expected seconds above 0"),
        (("stop", "--timeout", "-1"), "expected seconds above 0"),
        (("start", "-q", "../../etc"), "queue: expected a queue name of letters, digits"),
        (("start", "-q", "bad\x1bqueue"), "found 'bad\\x1bqueue'"),
    ],
)
def test_out_of_range_options_are_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], expected: str
) -> None:
    state = tmp_path / "never_created"
    code = main(["--state-dir", str(state), *args])
    said = capsys.readouterr()
    assert code == 1 and said.out == ""
    assert said.err.count("\n") == 1 and expected in said.err, said.err
    assert "Traceback" not in said.err
    assert not state.exists()  # refused before anything was written


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", "expected seconds above 0 and up to 3600, found 0.0"),
        ("-5", "found -5.0"),
        ("nan", "found nan"),
        ("1e9", "found 1000000000.0"),
        ("soon", "expected a number of seconds, found 'soon'"),
    ],
)
def test_a_bad_worker_wait_is_refused_by_the_command_and_the_executor(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    value: str,
    expected: str,
) -> None:
    """``CRUCIBLE_CELERY_WORKER_WAIT`` is read the same by ``workers start`` and the run's
    executor; an absurd wait is one line naming the variable, never a run that waits forever."""
    from crucible_dagster.dagster_plugin.celery.settings import worker_wait_problem

    monkeypatch.setenv("CRUCIBLE_CELERY_WORKER_WAIT", value)
    state = tmp_path / "never_created"
    code = main(["--state-dir", str(state), "start", "-n", "1"])
    said = capsys.readouterr()
    assert code == 1 and said.out == "" and not state.exists()
    assert said.err.startswith("error: CRUCIBLE_CELERY_WORKER_WAIT: ") and expected in said.err
    assert said.err.count("\n") == 1
    number = float(value) if value != "soon" else value
    assert worker_wait_problem(number) is not None  # the executor's own check agrees


@pytest.mark.slow  # start imports Celery and the Dagster app its workers run (1.5 s)
def test_a_link_planted_as_a_worker_log_is_never_written_through(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``start`` appends to ``<name>.log``: a symlink there must not send it elsewhere."""
    outside = tmp_path / "precious.txt"
    outside.write_text("keep")
    log = state / f"{worker_name(state, QUEUE, 1)}.log"
    log.symlink_to(outside)
    code = main(["--state-dir", str(state), "start", "-n", "1", "-q", QUEUE, "--timeout", "1"])
    said = capsys.readouterr()
    assert code == 1 and said.out == ""
    assert (
        said.err.startswith(f"error: {log}: cannot start a worker (")
        and "Traceback" not in said.err
    )
    assert said.err.count("\n") == 1
    assert outside.read_text() == "keep"
    assert not list(state.glob("*.pid"))  # nothing started, nothing half-recorded


def test_list_and_stop_of_a_missing_state_folder_create_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert main(["--state-dir", str(missing), "list"]) == 0
    assert main(["--state-dir", str(missing), "stop"]) == 0
    assert not missing.exists()


def test_worker_names_differ_between_state_folders_and_queues(tmp_path: Path) -> None:
    """Two checkouts on one broker (one host) never answer for each other's workers."""
    one, two = tmp_path / "a", tmp_path / "b"
    names = {
        worker_name(one, "dagster", 1),
        worker_name(two, "dagster", 1),
        worker_name(one, "other", 1),
    }
    assert len(names) == 3
    assert all(workers.NAME_RE.fullmatch(n) for n in names)


# --- with a broker ---------------------------------------------------------------------------


def command(state: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crucible_dagster.dagster_plugin.celery.workers", "--state-dir",
         str(state), *args],
        env=subprocess_env(**env), cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


@pytest.mark.slow
def test_a_worker_that_dies_before_it_is_ready_is_reported(state: Path) -> None:
    """A worker whose broker URL names no transport exits at once: reported, no pid file left."""
    queue = f"crucible_test_{uuid.uuid4().hex[:8]}"
    done = command(
        state, "start", "-n", "1", "--timeout", "60", "-q", queue,
        CRUCIBLE_CELERY_BROKER="nosuchtransport://127.0.0.1:1//",
    )  # fmt: skip
    name = worker_name(state, queue, 1)
    assert done.returncode == 1, done.stderr
    assert f"{name} exited with code 1 before it was ready: see {state / name}.log" in done.stderr
    assert "workers none ready" in done.stdout and "Traceback" not in done.stdout + done.stderr
    assert sorted(p.name for p in state.iterdir()) == [workers.LOCK_FILE, f"{name}.log"]


@pytest.mark.slow
@pytest.mark.integration
def test_start_and_stop_a_real_worker_beside_hostile_pid_files(
    state: Path, broker: None, bystander: subprocess.Popen[bytes]
) -> None:
    queue = f"crucible_test_{uuid.uuid4().hex[:8]}"
    started = command(state, "start", "-n", "1", "-q", queue)
    try:
        name = worker_name(state, queue, 1)
        assert started.returncode == 0, started.stderr
        assert f"workers {name} ready" in started.stdout
        saved = json.loads((state / f"{name}.pid").read_text())
        assert saved["start_time"] == start_time(saved["pid"]) and saved["queue"] == queue
        # a reply from a worker of that name counts only from the process we started
        stranger = workers.Started(workers.WorkerRecord.model_validate(saved), bystander, state)
        assert workers._answering({name: stranger}, 2.0) == set()
        (state / f"{worker_name(state, queue, 2)}.pid").write_text(f"{bystander.pid}\n")
        listed = command(state, "list")
        assert listed.stdout == f"{name}\tpid {saved['pid']}\tqueue {queue}\n"
        assert listed.returncode == 1 and "signalled nothing" in listed.stderr
    finally:
        stopped = command(state, "stop", "--timeout", "20")
    assert stopped.stdout.strip() == f"stopped {name}"
    assert stopped.returncode == 1  # the hostile file is still there, reported again
    assert not pid_alive(saved["pid"]) or start_time(saved["pid"]) is None
    assert bystander.poll() is None
    assert [p.name for p in state.glob("*.pid")] == [f"{worker_name(state, queue, 2)}.pid"]


@pytest.mark.slow
@pytest.mark.integration
def test_nothing_consumes_the_queue_fails_with_a_message(broker: None) -> None:
    """Before submitting steps the executor asks which queues have workers: none, a message."""
    from dagster_celery.make_app import make_app

    from crucible_dagster.dagster_plugin.celery.app import NoCeleryWorker, wait_for_consumers

    queue = f"crucible_test_{uuid.uuid4().hex[:8]}"
    app = make_app({"broker": "pyamqp://guest:guest@127.0.0.1:5672//", "backend": "rpc://"})
    with pytest.raises(NoCeleryWorker) as caught:  # after the 2 s wait: the test's --timeout
        wait_for_consumers(app, {queue}, 2.0)  # bounds a wait that never ends
    assert str(caught.value).startswith(f"no Celery worker is consuming queue {queue!r} on ")
    assert "start workers with `make workers`" in str(caught.value)
    assert "guest:guest" not in str(caught.value)  # the password is masked


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.postgres
def test_a_run_with_no_worker_fails_with_a_message_instead_of_hanging(
    deployment: Deployment,
) -> None:
    """``dagster job execute`` on a queue nobody consumes: the run fails after the wait."""
    write_experiment(deployment, sweep_yaml("celery_nobody", pause_s=0))
    deployment.env["CRUCIBLE_CELERY_WORKER_WAIT"] = "2"
    run = deployment.execute("celery_nobody")
    out, _ = run.communicate(timeout=180)  # a run that hung would raise TimeoutExpired here
    assert run.returncode != 0
    queue = deployment.env["CRUCIBLE_CELERY_QUEUE"]
    assert f"no Celery worker is consuming queue {queue!r}" in out, out[-3000:]
    assert "start workers with `make workers`" in out
    assert not list(deployment.artifacts.glob("celery_nobody/*/trials/*"))  # no step ran
    import dagster as dg

    home = deployment.env["DAGSTER_HOME"]
    with dg.DagsterInstance.from_config(home) as instance:
        (found,) = instance.get_runs(dg.RunsFilter(job_name="celery_nobody"))
    assert found.status == dg.DagsterRunStatus.FAILURE  # terminal, not left started


@pytest.mark.slow  # imports celery and waits on a refused connection
def test_an_unreachable_broker_fails_the_check_with_its_reason() -> None:
    """Connection refused: the run's message says the broker failed, password masked."""
    from dagster_celery.make_app import make_app

    from crucible_dagster.dagster_plugin.celery.app import NoCeleryWorker, wait_for_consumers

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = make_app({"broker": f"pyamqp://guest:s3cret@127.0.0.1:{port}//", "backend": "rpc://"})
    with pytest.raises(NoCeleryWorker) as caught:
        wait_for_consumers(app, {"dagster"}, 0.3)
    message = str(caught.value)
    assert message.startswith("no Celery worker is consuming queue 'dagster' on pyamqp://guest:**@")
    assert "the broker failed: OperationalError" in message and "s3cret" not in message


def test_queue_lists_are_accepted_and_malformed_ones_refused() -> None:
    """A worker may consume several queues (Celery's ``-Q a,b``); empty items are refused."""
    from crucible_dagster.dagster_plugin.celery.settings import queue_problem

    assert queue_problem("a") is None and queue_problem("bench_one,bench_two") is None
    for bad in ("", ",a", "a,,b", "a,", "a b", "a/b", "x" * 201):
        assert queue_problem(bad) is not None, bad
