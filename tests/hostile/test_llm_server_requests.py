"""The bundled LLM server is a network way in: every request that is not a chat completion
request (bad JSON, not UTF-8, a huge or lying Content-Length, a field missing or of the wrong
type) gets a 4xx with one JSON line of why, is counted as rejected, and the server goes on
answering; its command refuses bad arguments in one line and stops cleanly on a signal."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from crucible_dagster.contrib.llm_server import MAX_BODY_BYTES, llm_server

pytestmark = pytest.mark.timeout(60)


def exchange(url: str, head: bytes, body: bytes = b"", close_write: bool = False) -> bytes:
    """Sends bytes as they are (no client to tidy them up) and reads the whole answer."""
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head + body)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def post(url: str, body: bytes, length: str | None = None, extra: str = "") -> tuple[int, str]:
    size = str(len(body)) if length is None else length
    head = "POST /v1/chat/completions HTTP/1.0\r\nContent-Type: application/json\r\n"
    if size != "":
        head += f"Content-Length: {size}\r\n"
    answer = exchange(url, (head + extra + "\r\n").encode(), body)
    status_line, _, rest = answer.partition(b"\r\n")
    message = json.loads(rest.partition(b"\r\n\r\n")[2])["error"]["message"]
    return int(status_line.split()[1]), message


GOOD = {"model": "m", "messages": [{"role": "user", "content": "1+2"}]}

#: (case, body, status, the message's phrase)
REFUSED = [
    ("not json", b'{"model": "m", ', 400, "the body is not JSON (line 1"),
    ("not utf-8", '{"model": "caf\xe9"}'.encode("latin-1"), 400, "not UTF-8 (byte 14)"),
    ("nested", b"[" * 100_000, 400, "nested too deeply"),
    ("a list", b"[1, 2]", 400, "expected a JSON object, found list"),
    ("no model", json.dumps({"messages": GOOD["messages"]}).encode(), 400, "model: expected"),
    ("model number", json.dumps({**GOOD, "model": 5}).encode(), 400, "model: expected"),
    ("no messages", b'{"model": "m"}', 400, "messages: expected a non-empty list"),
    ("empty messages", b'{"model": "m", "messages": []}', 400, "messages: expected a non-empty"),
    ("message text", b'{"model": "m", "messages": ["hi"]}', 400, "messages[0]: expected an obj"),
    (
        "content number",
        b'{"model": "m", "messages": [{"role": "user", "content": 5}]}',
        400,
        "messages[0].content: expected text, found int",
    ),
    (
        "no role",
        b'{"model": "m", "messages": [{"content": "x"}]}',
        400,
        "messages[0].role: expected text, found nothing",
    ),
]


def test_each_bad_request_is_a_4xx_naming_why_and_the_server_goes_on() -> None:
    with llm_server() as (url, server):
        for case, body, status, phrase in REFUSED:
            got, message = post(url, body)
            assert (got, case) == (status, case) and phrase in message, (case, message)
        assert server.requests == {} and server.rejected == {400: len(REFUSED)}
        answer = exchange(
            url,
            b"POST /v1/chat/completions HTTP/1.0\r\nContent-Length: "
            + str(len(json.dumps(GOOD))).encode()
            + b"\r\n\r\n",
            json.dumps(GOOD).encode(),
        )
        assert answer.startswith(b"HTTP/1.0 200")
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["choices"][0]["message"] == {
            "role": "assistant",
            "content": "3",
        }
        assert server.requests == {"m": 1}


def test_a_huge_body_is_refused_before_it_is_read() -> None:
    """Content-Length over the cap: 413 at once, the body never sent (nothing to wait for)."""
    with llm_server() as (url, server):
        status, message = post(url, b"", length=str(MAX_BODY_BYTES + 1))
        assert status == 413 and f"over the {MAX_BODY_BYTES}-byte cap" in message
        assert server.rejected == {413: 1} and server.bodies == []


@pytest.mark.parametrize(
    ("length", "extra", "status", "phrase"),
    [
        ("", "", 411, "a Content-Length is required"),
        ("-5", "", 400, "Content-Length: expected a whole number, found '-5'"),
        ("12abc", "", 400, "expected a whole number, found '12abc'"),
        ("", "Transfer-Encoding: chunked\r\n", 411, "not chunked"),
    ],
    ids=["missing", "negative", "text", "chunked"],
)
def test_a_length_that_cannot_be_trusted_is_refused(
    length: str, extra: str, status: int, phrase: str
) -> None:
    with llm_server() as (url, server):
        got, message = post(url, b"", length=length, extra=extra)
        assert got == status and phrase in message
        assert server.requests == {}


def test_a_body_shorter_than_its_length_is_refused_when_the_client_stops() -> None:
    with llm_server() as (url, server):
        head = b"POST /v1/chat/completions HTTP/1.0\r\nContent-Length: 100\r\n\r\n"
        answer = exchange(url, head, b'{"model": "m"', close_write=True)
        assert answer.startswith(b"HTTP/1.0 400")
        assert b"the body ended after 13 of 100 bytes" in answer
        assert server.rejected == {400: 1}


def test_it_binds_the_loopback_interface_only() -> None:
    with llm_server() as (url, _server):
        assert url.startswith("http://127.0.0.1:")
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        addresses = socket.gethostbyname_ex(socket.gethostname())[2]
        for address in (a for a in addresses if not a.startswith("127.")):
            with pytest.raises(OSError):
                socket.create_connection((address, port), timeout=2).close()


# --- the command ---------------------------------------------------------------------------


def command(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "crucible_dagster.contrib.llm_server", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow  # a Python process started and stopped, twice
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_command_prints_its_url_and_stops_cleanly_on_a_signal(how: signal.Signals) -> None:
    proc = command("--port", "0")
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        answer = exchange(url.removesuffix("/v1"), b"GET /stats HTTP/1.0\r\n\r\n")
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["requests"] == {}
        os.kill(proc.pid, how)
        out, err = proc.communicate(timeout=20)
    finally:  # a server that ignored the signal must not outlive the test
        proc.kill()
        proc.wait()
    assert proc.returncode == 0 and err == "" and out == ""


@pytest.mark.slow  # a Python process each
def test_the_command_refuses_bad_arguments_in_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "key.jsonl"
    broken.write_text('{"question": "q", "answer": "#### 1"}\n{not json\n')
    for args, code, phrase in [
        (["--port", "70000"], 2, "--port: expected 0 to 65535, found 70000"),
        (["--port", "0", "--answers", str(broken)], 1, f"{broken}: line 2: expected GSM8K's"),
        (["--port", "0", "--answers", str(tmp_path / "none")], 1, "No such file"),
    ]:
        proc = command(*args)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == code and out == ""
        (line,) = err.strip().splitlines()
        assert phrase in line and "Traceback" not in err
