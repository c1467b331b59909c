"""Personal data and secrets in text: found (emails, phone numbers, Luhn-valid card numbers,
API-key-like tokens) and redacted as ``[REDACTED:<kind>]``. Plain text and JSON-like records
only, so the run's own records (runtime) can redact what they copy; the guardrails stage uses
the same finder over the examples, outputs and predictions."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"
)
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){2,4}(?!\d)"
)
_API_KEYS = re.compile(
    r"\b(?:sk-(?:proj-|live-|test-)?[A-Za-z0-9_-]{20,}"
    r"|sk_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|AKIA[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{36,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r"|glpat-[A-Za-z0-9_-]{20,})"
)
_ASSIGNED_SECRET = re.compile(
    r"(?i)\b(?:api[_-]?key|secret|token|password|passwd)\b\s*[:=]\s*['\"]?([A-Za-z0-9_\-./+=]{16,})"
)


def find_sensitive(text: str) -> list[tuple[str, int, int]]:
    """(kind, start, end) of every finding; overlapping weaker findings are dropped."""
    found: list[tuple[str, int, int]] = []
    taken: list[tuple[int, int]] = []

    def add(kind: str, start: int, end: int) -> None:
        if any(start < e and s < end for s, e in taken):
            return
        taken.append((start, end))
        found.append((kind, start, end))

    for match in _API_KEYS.finditer(text):
        add("api_key", match.start(), match.end())
    for match in _ASSIGNED_SECRET.finditer(text):
        add("api_key", match.start(1), match.end(1))
    for match in _EMAIL.finditer(text):
        add("email", match.start(), match.end())
    for match in _CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            add("credit_card", match.start(), match.end())
    for match in _PHONE.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 9 <= len(digits) <= 15:
            add("phone", match.start(), match.end())
    return sorted(found, key=lambda f: f[1])


def redact(text: str) -> str:
    """``text`` with every PII finding replaced by ``[REDACTED:<kind>]``."""
    return redacted_counted(text)[0]


def redacted_counted(text: str) -> tuple[str, int]:
    """``redact``'s text and how many findings it replaced, from one search."""
    found = find_sensitive(text)
    for kind, start, end in reversed(found):
        text = f"{text[:start]}[REDACTED:{kind}]{text[end:]}"
    return text, len(found)


def redact_record(value: Any, found: Mapping[str, str] | None = None, findings: bool = True) -> Any:
    """``value`` (a record: JSON-like) with every value in ``found`` redacted wherever it is,
    and (``findings``) every PII finding in each string: what a violation record or the
    manifest's copy of the experiment and stage options keeps of the guardrails' findings."""
    if found:
        pattern = re.compile("|".join(re.escape(v) for v in sorted(found, key=len, reverse=True)))
        value = each_string(
            value, lambda text: pattern.sub(lambda m: f"[REDACTED:{found[m[0]]}]", text)
        )
    return each_string(value, redact) if findings else value


def each_string(
    value: Any, fix: Callable[[str], str], other: Callable[[Any], Any] | None = None
) -> Any:
    """``value`` with ``fix`` applied to every string in it (mappings, lists, tuples); ``other``
    rewrites each value of any other type (the guardrails' tables), kept as is without it.
    One walk for every redaction, so a container one of them misses, all miss alike."""
    if isinstance(value, str):
        return fix(value)
    if isinstance(value, Mapping):
        return {k: each_string(v, fix, other) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(each_string(v, fix, other) for v in value)
    return value if other is None else other(value)
