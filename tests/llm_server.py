"""A small OpenAI-compatible chat completions server for the tests: real HTTP on 127.0.0.1.

It answers deterministically (the same messages give the same answer), counts requests, and
can be told to fail (status codes, with Retry-After), to stall past a client's timeout, or to
draw each response's latency from a function (a heavy tail for the hedging benchmark).
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
class ServerState:
    answer: Callable[[str, list[dict[str, Any]]], str] = default_answer
    #: seconds to wait before answering: request number (1-based) and body -> seconds
    latency_s: Callable[[int, dict[str, Any]], float] = lambda n, body: 0.0
    failures: list[tuple[int, float | None]] = field(default_factory=list)  # (status, retry_after)
    stall_s: float = 0.0
    requests: Counter[str] = field(default_factory=Counter)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, count: int, status: int = 503, retry_after: float | None = None) -> None:
        with self.lock:
            self.failures.extend([(status, retry_after)] * count)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        state = self.server.state
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        with state.lock:
            state.requests[body.get("model", "")] += 1
            state.bodies.append(body)
            number = sum(state.requests.values())
            failure = state.failures.pop(0) if state.failures else None
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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ServerState


@contextmanager
def llm_server() -> Iterator[tuple[str, ServerState]]:
    """The server's API root (``http://127.0.0.1:<port>/v1``) and its state, for one test."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.state = ServerState()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", server.state
    finally:
        server.shutdown()
        server.server_close()
