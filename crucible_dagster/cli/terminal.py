"""What reaches the terminal: control characters escaped, error lines on one line on stderr."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from typing import Any

# C0 and C1 controls, DEL, and the bidirectional overrides that reorder what a terminal shows.
_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_IN_TEXT = re.compile(f"[{_CONTROLS}]")
_IN_LINE = re.compile(f"[{_CONTROLS}\\t\\n]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")


def terminal_safe(text: str, *, one_line: bool = True) -> str:
    """``text`` with every control character shown as an escape, so input cannot drive the terminal.

    ``one_line`` escapes newlines and tabs too: an error is one line whatever its values hold.
    """
    return (_IN_LINE if one_line else _IN_TEXT).sub(_escape, text)


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
