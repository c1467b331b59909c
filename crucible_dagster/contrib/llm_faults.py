"""Answers no well-behaved server gives, for the hostile tests of HTTP clients: the bundled LLM
server's ``script`` hook sends a ``Raw`` response byte for byte (a redirect, a body dripped a
byte at a time, a huge body, a wrong content type, bad JSON, non-UTF-8)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from io import BufferedIOBase
from typing import Any


@dataclass
class Raw:
    """A response written byte for byte, for answers no well-behaved server would give."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    #: seconds between two bytes of the body (a drip), and whether the head drips too
    drip_s: float = 0.0
    drip_head: bool = False
    #: send Content-Length (else the body ends when the connection closes)
    length: bool = True
    #: a Content-Length to claim instead of the body's own
    claimed_length: int | None = None

    def head(self) -> bytes:
        lines = [f"HTTP/1.0 {self.status} Scripted"]
        if self.content_type is not None:
            lines.append(f"Content-Type: {self.content_type}")
        if self.length:
            size = self.claimed_length if self.claimed_length is not None else len(self.body)
            lines.append(f"Content-Length: {size}")
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def redirect(location: str, status: int = 302) -> Raw:
    return Raw(status, b"", None, {"Location": location})


def completion_body(content: Any, usage: Any = None) -> bytes:
    """A chat completion's JSON with any ``content`` and ``usage`` (of any shape)."""
    payload: dict[str, Any] = {"choices": [{"index": 0, "message": {"content": content}}]}
    if usage is not None:
        payload["usage"] = usage
    return json.dumps(payload).encode()


def _drip(out: BufferedIOBase, data: bytes, seconds: float) -> None:
    for i in range(len(data)):
        out.write(data[i : i + 1])
        out.flush()
        time.sleep(seconds)


def write_raw(out: BufferedIOBase, raw: Raw) -> None:
    """Writes ``raw`` to the connection; a client that gave up midway is no error here."""
    head, body = raw.head(), raw.body
    try:
        if raw.drip_head:
            _drip(out, head, raw.drip_s)
        else:
            out.write(head)
            out.flush()
        if raw.drip_s:
            _drip(out, body, raw.drip_s)
        else:
            out.write(body)
    except (BrokenPipeError, ConnectionResetError):
        pass
