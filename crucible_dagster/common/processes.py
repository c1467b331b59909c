"""Processes we started, told apart from any other process that holds the same pid.

A pid alone names whatever process the kernel gave that number last: a pid file read back later
can point at an unrelated process (pid reuse), or hold ``0``/``-1``, which ``kill`` reads as the
whole process group or every process we may signal. So a process we manage is its pid together
with its start time, and we signal it only after checking both (through a pidfd where Linux has
one, so the check and the signal name the same process).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

#: pids 0 and 1 are never a process we started: 0 (and negatives) mean a process group to
#: ``kill``, 1 is init
MIN_MANAGED_PID = 2
#: the largest pid Linux can hand out (``PID_MAX_LIMIT``); anything above is no process
MAX_PID = 4_194_304


def valid_pid(pid: object) -> bool:
    """A positive int that can name one process (never a bool, a group or everyone)."""
    return isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid <= MAX_PID


def pid_alive(pid: object) -> bool:
    """True when a process ``pid`` exists (one we may not signal counts as alive).

    Anything but a valid pid is no process: ``os.kill(0, 0)`` or ``os.kill(-1, 0)`` would
    otherwise answer for a whole group and call it alive."""
    if not valid_pid(pid):
        return False
    assert isinstance(pid, int)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


def _proc_start_time(pid: int) -> str | None:
    """Field 22 of ``/proc/<pid>/stat`` (clock ticks after boot); the name field may hold ')'.

    A zombie (state Z or X) has ended: it has no start time to match."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    # fields[0] is field 3 (the state): field 22 is fields[19]
    if len(fields) < 20 or not fields[19].isdigit() or fields[0] in ("Z", "X"):
        return None
    return f"proc:{fields[19]}"


def command_line(pid: int) -> list[str] | None:
    """The arguments process ``pid`` was started with, or None where they cannot be read."""
    if not valid_pid(pid):
        return None
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return _ps_command_line(pid)
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def _ps_command_line(pid: int) -> list[str] | None:
    """``ps -o command=`` where there is no /proc: split on spaces, enough to find a name."""
    if Path("/proc/self/stat").exists():
        return None  # /proc exists but not this pid's entry: no such process
    text = _ps_column(pid, "command")
    return text.split() if text else None


def _ps_column(pid: int, column: str) -> str | None:
    """One ``ps -o <column>=`` reading of ``pid``, stripped; None where ps fails or says nothing.
    Shared so the command line and the start time ask ps the same way, with one timeout."""
    try:
        found = subprocess.run(
            ["ps", "-o", f"{column}=", "-p", str(pid)],
            capture_output=True, text=True, timeout=5, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    text = found.stdout.strip()
    return text if found.returncode == 0 and text else None


def _psutil_start_time(pid: int) -> str | None:
    try:
        import psutil  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None
    try:
        return f"psutil:{psutil.Process(pid).create_time():.6f}"
    except (psutil.Error, OSError):
        return None


def _ps_start_time(pid: int) -> str | None:
    """``ps -o lstart=``: POSIX systems without /proc (macOS) and without psutil."""
    text = _ps_column(pid, "lstart")
    return f"ps:{text}" if text else None


def start_time(pid: int) -> str | None:
    """When process ``pid`` started, as an opaque string two readings of one process agree on;
    None when there is no such process or no way to tell."""
    if not valid_pid(pid):
        return None
    if Path("/proc/self/stat").exists():
        return _proc_start_time(pid)
    return _psutil_start_time(pid) or _ps_start_time(pid)


def is_same_process(pid: int, started: str) -> bool:
    """True when ``pid`` is alive and is the process that started at ``started``."""
    if not valid_pid(pid) or pid < MIN_MANAGED_PID or not started:
        return False
    return start_time(pid) == started


def signal_process(pid: int, started: str, signum: int) -> bool:
    """Send ``signum`` to ``pid`` only if it is still the process that started at ``started``.

    False (nothing sent) when it is not, or is gone. Pids below 2 are refused outright."""
    if not valid_pid(pid) or pid < MIN_MANAGED_PID:
        return False
    if sys.platform == "linux" and hasattr(os, "pidfd_open"):
        return _signal_through_pidfd(pid, started, signum)
    if not is_same_process(pid, started):
        return False
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _signal_through_pidfd(pid: int, started: str, signum: int) -> bool:
    """The pidfd pins one process: checked after opening it, the signal cannot reach a successor."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        if not is_same_process(pid, started):
            return False
        signal.pidfd_send_signal(fd, signum)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True
