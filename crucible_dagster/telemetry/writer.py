"""The one writer of ``telemetry.jsonl``: each event one line, written with one ``write`` call
on a file opened for appending, so threads and processes (Celery workers, multiprocess steps)
appending to one run's file never interleave inside a line, and a run killed at any moment
leaves every line it finished (at most the one being written is torn)."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from crucible_dagster.common.jsonsafe import to_jsonable


class EventWriter:
    """Appends events to ``path``; the file is opened once per process (a forked child opens
    its own), never through a symlink."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def _open(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            self._fd, self._pid = os.open(self.path, flags, 0o644), os.getpid()
        return self._fd

    def __call__(self, event: dict[str, Any]) -> None:
        data = (json.dumps(to_jsonable(event), sort_keys=True) + "\n").encode()
        with self._lock:
            fd = self._open()
            written = os.write(fd, data)
            while written < len(data):  # a regular file takes it whole; a short write goes on
                written += os.write(fd, data[written:])

    def close(self) -> None:
        with self._lock:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        with contextlib.suppress(OSError):
            self.close()
