"""What reaches the terminal from a command: error lines on one line on stderr, and streams that
escape control characters (the escaping itself is ``common.terminal``)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from crucible_dagster.common.terminal import terminal_safe


def error_line(line: str) -> None:
    """The one place an error line is printed: escaped, on one line, on stderr."""
    print(terminal_safe(line), file=sys.stderr, flush=True)


class _SafeStream:
    """A text stream that escapes control characters (keeping newlines and tabs) before writing.

    Installed over stdout and stderr for the whole command, so a value read from a file, a
    manifest or an argument reaches the terminal as text, whoever prints it (argparse included).
    """

    def __init__(self, stream: Any):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(terminal_safe(text, one_line=False))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def safe_terminal() -> Iterator[None]:
    """stdout and stderr escape control characters for the duration of the block."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _SafeStream(sys.stdout), _SafeStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
