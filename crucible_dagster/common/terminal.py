"""Text that reaches a terminal: control characters shown as escapes, so input cannot drive it.

One rule for every printer (the command line, the demo's progress lines), on the lowest floor so
each can import it.
"""

from __future__ import annotations

import re

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
