"""Reading a chat completions answer: its body as JSON (content type, encoding, syntax), then
its text and token counts, each problem an ``HttpFailure`` naming the field (not worth
retrying: the service answered)."""

from __future__ import annotations

import json
from typing import Any

from crucible_dagster.backends.http import Answer, HttpFailure, printable

#: the most tokens one answer may say it used: a server's 10^18 went into the budget ledger,
#: which then refused every later request as unreadable (no request uses a billion tokens)
MAX_USAGE = 10**9


def _count(usage: dict[str, Any], field: str, where: str) -> int | None:
    value = usage.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        found = printable(repr(value), 60)
        raise HttpFailure(
            f"{where}: usage.{field}: expected a whole number >= 0, found {found}", False
        )
    if value > MAX_USAGE:
        shown = printable(
            str(value) if value < 10**60 else f"a number of {len(str(value))} digits", 80
        )
        raise HttpFailure(
            f"{where}: usage.{field}: expected at most {MAX_USAGE:.0e} tokens, found {shown}", False
        )
    return value


def completion(payload: Any, where: str) -> tuple[str, int | None, int | None]:
    """The answer's text and token counts; an HttpFailure naming the field when it has none."""
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise HttpFailure(f"{where}: the answer has no choices[0].message.content", False) from None
    if not isinstance(content, str):
        found = type(content).__name__
        raise HttpFailure(
            f"{where}: choices[0].message.content: expected text, found {found}", False
        )
    try:
        content.encode("utf-8")
    except UnicodeEncodeError as exc:  # valid JSON ("\ud800") that no file can store
        raise HttpFailure(
            f"{where}: choices[0].message.content: not valid Unicode "
            f"(a lone surrogate at character {exc.start})",
            False,
        ) from None
    usage = payload.get("usage")
    if usage is None:
        return content, None, None
    if not isinstance(usage, dict):
        found = type(usage).__name__
        raise HttpFailure(f"{where}: usage: expected an object, found {found}", False)
    return content, _count(usage, "prompt_tokens", where), _count(usage, "completion_tokens", where)


def decoded(answer: Answer, where: str) -> Any:
    """A 2xx answer's body as JSON: its content type, encoding and syntax checked."""
    media = answer.content_type.partition(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        found = printable(answer.content_type, 60) or "none"
        raise HttpFailure(f"{where}: content type {found!r}, expected application/json", False)
    try:
        text = answer.body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HttpFailure(f"{where}: the body is not UTF-8 (byte {exc.start})", False) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        message = f"{where}: the body is not JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
        raise HttpFailure(message, False) from None
    except RecursionError:
        raise HttpFailure(f"{where}: the body's JSON is nested too deeply", False) from None
