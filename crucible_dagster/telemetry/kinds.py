"""The kind of a failed request, in a few words and never its text: an error message may quote
the prompt, which telemetry never holds."""

from __future__ import annotations

import re

_STATUS = re.compile(r"\b(?:HTTP|status)\s*([1-5]\d\d)\b", re.IGNORECASE)


def error_kind(error: str | None) -> str | None:
    """A short, text-free kind of a failed answer: ``http_503``, ``timeout``, ``budget`` ..."""
    if error is None:
        return None
    lowered = error.lower()
    status = _STATUS.search(error)
    if status:
        return f"http_{status.group(1)}"
    for kind in ("timeout", "budget", "rate_limit", "refused", "invalid"):
        if kind.replace("_", " ") in lowered or kind in lowered:
            return kind
    if "timed out" in lowered:
        return "timeout"
    return "error"
