"""A small OpenAI-compatible chat completions server for the tests: real HTTP on 127.0.0.1.

It answers deterministically (the same messages give the same answer), counts requests, and
can be told to fail (status codes, with Retry-After), to stall past a client's timeout, or to
draw each response's latency from a function (a heavy tail for the hedging benchmark). For the
hostile tests, ``script`` answers chosen requests with a ``Raw`` response instead: a redirect,
a body dripped a byte at a time, a huge body, a wrong content type, bad JSON, non-UTF-8. Every
request's method, path and headers are kept in ``seen`` (a redirect target that must never be
asked records nothing).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def default_answer(model: str, messages: list[dict[str, Any]]) -> str:
    """'yes'/'no' questions answered by the question's hash (so models disagree sometimes),
    arithmetic 'a+b' answered right, anything else echoed."""
    text = str(messages[-1].get("content", ""))
    if "+" in text and all(part.strip().isdigit() for part in text.split("+")):
        return str(sum(int(part) for part in text.split("+")))
    digest = hashlib.sha256(f"{model}|{text}".encode()).digest()
    if text.endswith("?"):
        return "yes" if digest[0] % 2 else "no"
    return f"echo: {text}"


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


@dataclass
class ServerState:
    answer: Callable[[str, list[dict[str, Any]]], str] = default_answer
    #: seconds to wait before answering: request number (1-based) and body -> seconds
    latency_s: Callable[[int, dict[str, Any]], float] = lambda n, body: 0.0
    failures: list[tuple[int, float | None]] = field(default_factory=list)  # (status, retry_after)
    stall_s: float = 0.0
    requests: Counter[str] = field(default_factory=Counter)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    #: request number (1-based) and body -> a scripted response, or None for the usual answer
    script: Callable[[int, dict[str, Any]], Raw | None] = lambda n, body: None
    #: (method, path, headers) of every request received, answered or not
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, count: int, status: int = 503, retry_after: float | None = None) -> None:
        with self.lock:
            self.failures.extend([(status, retry_after)] * count)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _seen(self) -> None:
        with self.server.state.lock:
            self.server.state.seen.append((self.command, self.path, dict(self.headers.items())))

    def do_GET(self) -> None:  # only a client that followed a redirect would ask
        self._seen()
        self._send(405, {"error": {"message": "GET is not an API call"}})

    def do_POST(self) -> None:
        state = self.server.state
        self._seen()
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        with state.lock:
            state.requests[body.get("model", "")] += 1
            state.bodies.append(body)
            number = sum(state.requests.values())
            failure = state.failures.pop(0) if state.failures else None
        scripted = state.script(number, body)
        if scripted is not None:
            self._send_raw(scripted)
            return
        if not self.path.endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        if failure is not None:
            status, retry_after = failure
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            self._send(status, {"error": {"message": "injected failure"}}, headers)
            return
        time.sleep(state.stall_s or state.latency_s(number, body))
        content = state.answer(body["model"], body["messages"])
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        self._send(
            200,
            {
                "id": f"cmpl-{number}",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(content.split()),
                    "total_tokens": prompt_tokens + len(content.split()),
                },
            },
        )

    def _send(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass

    def _send_raw(self, raw: Raw) -> None:
        self.close_connection = True
        head, body = raw.head(), raw.body
        try:
            if raw.drip_head:
                self._drip(head, raw.drip_s)
            else:
                self.wfile.write(head)
                self.wfile.flush()
            if raw.drip_s:
                self._drip(body, raw.drip_s)
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up
            pass

    def _drip(self, data: bytes, seconds: float) -> None:
        for i in range(len(data)):
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()
            time.sleep(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ServerState


@contextmanager
def llm_server() -> Iterator[tuple[str, ServerState]]:
    """The server's API root (``http://127.0.0.1:<port>/v1``) and its state, for one test."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.state = ServerState()
    # shutdown() waits for serve_forever to poll its flag: every 0.5 s by default, per test
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", server.state
    finally:
        server.shutdown()
        server.server_close()
