"""A local OpenAI-compatible chat completions server: deterministic answers per model, token
usage, a request counter. For ``make demo-eval``, the tests and the benchmarks.

``python -m crucible_dagster.contrib.llm_server --port 8765`` serves
``http://127.0.0.1:8765/v1`` (``POST /v1/chat/completions``, ``GET /v1/models``, and
``GET /stats`` for the counters) until SIGTERM or Ctrl-C. It binds 127.0.0.1 only. What each
model answers is ``simulated_answers``: the GSM8K questions the project ships are answered
right on a subset fixed by a hash, so two models (and two prompts) differ the same way every
run. Tokens are whitespace words, which the backends' ``tokenizer: words`` counts exactly.

A request that is not a chat completion request is refused with a 4xx and one JSON line of why
(length missing, over ``max_body_bytes``, not UTF-8, not JSON, a field missing or of the wrong
type), never answered with a traceback. In tests, ``llm_server()`` runs one on a free port and
hands over its ``ServerState``: answers, latency, injected failures and ``script``ed raw
responses can be set, and every request is kept in ``bodies`` and ``seen``.
"""

from __future__ import annotations

import argparse
import functools
import json
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from crucible_dagster.contrib.llm_faults import Raw, completion_body, redirect, write_raw
from crucible_dagster.contrib.simulated_answers import (
    MODEL_ACCURACY,
    default_answer,
    read_answer_key,
    shipped_answer_key,
)

__all__ = ["Raw", "ServerState", "completion_body", "default_answer", "llm_server", "redirect"]

DEFAULT_PORT = 8765
#: a request body over this is refused (413) before it is read
MAX_BODY_BYTES = 1 << 20
#: seconds a connection may take to send its request (a client that stalls is dropped)
READ_TIMEOUT_S = 10.0


class BadRequest(Exception):
    """A request refused: its status and why, sent back as ``{"error": {"message": ...}}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise BadRequest(400, "messages: expected a non-empty list of {role, content}")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequest(400, f"messages[{index}]: expected an object {{role, content}}")
        for key in ("role", "content"):
            if not isinstance(message.get(key), str):
                found = type(message.get(key)).__name__ if key in message else "nothing"
                raise BadRequest(400, f"messages[{index}].{key}: expected text, found {found}")


def checked_request(raw: bytes) -> dict[str, Any]:
    """The request's JSON, with a model name and a list of text messages; BadRequest else."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadRequest(400, f"the body is not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(400, f"the body is not JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:
        raise BadRequest(400, "the body's JSON is nested too deeply") from None
    if not isinstance(body, dict):
        raise BadRequest(400, f"expected a JSON object, found {type(body).__name__}")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise BadRequest(400, "model: expected the model's name (text)")
    _check_messages(body.get("messages"))
    return body


@dataclass
class ServerState:
    answer: Callable[[str, list[dict[str, Any]]], str] = default_answer
    #: seconds to wait before answering: request number (1-based) and body -> seconds
    latency_s: Callable[[int, dict[str, Any]], float] = lambda n, body: 0.0
    failures: list[tuple[int, float | None]] = field(default_factory=list)  # (status, retry_after)
    stall_s: float = 0.0
    #: requests answered or failed on purpose, by model (refused ones are in ``rejected``)
    requests: Counter[str] = field(default_factory=Counter)
    #: refused requests by status
    rejected: Counter[int] = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    #: request number (1-based) and body -> a scripted response, or None for the usual answer
    script: Callable[[int, dict[str, Any]], Raw | None] = lambda n, body: None
    #: (method, path, headers) of every request received, answered or not
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    #: keep every request in ``bodies`` and ``seen`` (a test's server does; the command's not)
    keep_requests: bool = True
    max_body_bytes: int = MAX_BODY_BYTES
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, count: int, status: int = 503, retry_after: float | None = None) -> None:
        with self.lock:
            self.failures.extend([(status, retry_after)] * count)

    def stats(self) -> dict[str, Any]:
        """The counters, as ``GET /stats`` answers them."""
        with self.lock:
            return {
                "requests": dict(self.requests),
                "rejected": {str(k): v for k, v in self.rejected.items()},
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
            }


def completion(number: int, model: str, content: str, prompt_tokens: int) -> dict[str, Any]:
    """A chat completion with its usage (tokens as whitespace words)."""
    completion_tokens = len(content.split())
    return {
        "id": f"cmpl-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = READ_TIMEOUT_S
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _seen(self) -> None:
        state = self.server.state
        if state.keep_requests:
            with state.lock:
                state.seen.append((self.command, self.path, dict(self.headers.items())))

    def do_GET(self) -> None:
        self._seen()
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/stats":
            self._send(200, self.server.state.stats())
        elif path == "/v1/models":
            models = [{"id": name, "object": "model"} for name in MODEL_ACCURACY]
            self._send(200, {"object": "list", "data": models})
        else:  # what a client that followed a redirect would ask
            self._send(405, {"error": {"message": "GET is not an API call"}})

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise BadRequest(411, "send the body with a Content-Length, not chunked")
        length = self.headers.get("Content-Length")
        if length is None:
            raise BadRequest(411, "a Content-Length is required")
        if not length.strip().isdigit():
            raise BadRequest(400, f"Content-Length: expected a whole number, found {length[:40]!r}")
        size = int(length)
        if size > self.server.state.max_body_bytes:
            cap = self.server.state.max_body_bytes
            raise BadRequest(413, f"the body is {size} bytes, over the {cap}-byte cap")
        data = self.rfile.read(size)
        if len(data) < size:
            raise BadRequest(400, f"the body ended after {len(data)} of {size} bytes")
        return data

    def do_POST(self) -> None:
        self._seen()
        state = self.server.state
        try:
            body = checked_request(self._read_body())
        except BadRequest as exc:
            with state.lock:
                state.rejected[exc.status] += 1
            self.close_connection = True
            self._send(exc.status, {"error": {"message": str(exc)}})
            return
        except TimeoutError:  # the client stopped sending: nothing to answer
            self.close_connection = True
            return
        with state.lock:
            state.requests[body["model"]] += 1
            if state.keep_requests:
                state.bodies.append(body)
            number = sum(state.requests.values())
            failure = state.failures.pop(0) if state.failures else None
        scripted = state.script(number, body)
        if scripted is not None:
            self.close_connection = True
            write_raw(self.wfile, scripted)
            return
        if not self.path.endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path[:200]}"}})
            return
        if failure is not None:
            status, retry_after = failure
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            self._send(status, {"error": {"message": "injected failure"}}, headers)
            return
        self._answer(number, body)

    def _answer(self, number: int, body: dict[str, Any]) -> None:
        state = self.server.state
        time.sleep(state.stall_s or state.latency_s(number, body))
        content = state.answer(body["model"], body["messages"])
        prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
        payload = completion(number, body["model"], content, prompt_tokens)
        with state.lock:
            state.prompt_tokens += prompt_tokens
            state.completion_tokens += payload["usage"]["completion_tokens"]
        self._send(200, payload)

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
    #: the listen backlog (socketserver's default is 5): a client's burst of connections (8
    #: at a time and their hedges) overflowed it on a loaded machine, and connections were
    #: reset or waited out SYN retries of 1 s and more
    request_queue_size = 128
    state: ServerState

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A handler that failed (a connection reset mid-read) ends that connection only."""
        error = sys.exc_info()[1]
        print(f"llm_server: request failed: {type(error).__name__}: {error}", file=sys.stderr)


def _url(server: _Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


def _start(port: int, state: ServerState) -> _Server:
    server = _Server(("127.0.0.1", port), _Handler)
    server.state = state
    return server


@contextmanager
def llm_server(state: ServerState | None = None) -> Iterator[tuple[str, ServerState]]:
    """A server on a free port for the ``with`` block: its API root
    (``http://127.0.0.1:<port>/v1``) and its state."""
    server = _start(0, state or ServerState())
    # shutdown() waits for serve_forever to poll its flag: every 0.5 s by default
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield _url(server), server.state
    finally:
        server.shutdown()
        server.server_close()


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m crucible_dagster.contrib.llm_server", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0: any free port")
    parser.add_argument(
        "--answers",
        type=Path,
        action="append",
        default=[],
        help="a GSM8K JSONL file whose questions the models also know (repeatable)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Serves until SIGTERM or Ctrl-C; prints the API root once it accepts requests."""
    args = _arguments(argv)
    if not 0 <= args.port <= 65535:
        print(f"--port: expected 0 to 65535, found {args.port}", file=sys.stderr)
        return 2
    try:
        key = {**shipped_answer_key(), **read_answer_key(args.answers)}
        server = _start(args.port, ServerState(keep_requests=False))
    except (OSError, ValueError) as exc:
        print(f"llm_server: {exc}", file=sys.stderr)
        return 1
    server.state.answer = functools.partial(default_answer, key=key)
    # a signal handler runs on the thread that serves: shutdown() must come from another
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(_url(server), flush=True)
    try:
        server.serve_forever(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
