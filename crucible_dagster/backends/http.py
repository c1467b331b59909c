"""One HTTP POST with a deadline for the whole exchange, a capped body, and no redirects.

Why not ``urllib``: it follows redirects (a 302 turns the POST into a GET to wherever
``Location`` points, ``Authorization`` header included), and its timeout bounds each socket
read, so a server dripping one byte a second never times out. ``httpx`` (not a dependency
here) also bounds each phase, not the whole request. ``http.client`` follows nothing; a timer
that shuts the socket down at the deadline bounds every phase (connect, headers, body), and
the body is read in chunks against a byte cap. Environment proxies are not used.
"""

from __future__ import annotations

import contextlib
import http.client
import math
import re
import socket
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

CHUNK = 64 * 1024


class HttpFailure(RuntimeError):
    """A request that got no usable answer; ``retryable`` when asking again may help."""

    def __init__(self, message: str, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    retry_after: float | None
    body: bytes


def printable(text: str, limit: int = 200) -> str:
    """A server's text made safe for one line on a terminal: control characters escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])


def shown_url(url: str) -> str:
    """``url`` for messages and records: a password in it is replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:  # unparsed: whatever sits between '//' and the last '@' goes
        return printable(re.sub(r"(?<=//)[^/?#]*@", "***@", url), 500)
    if parts.password is None:
        return printable(url, 500)
    netloc = f"{parts.username}:***@{parts.netloc.rpartition('@')[2]}"
    return printable(parts._replace(netloc=netloc).geturl(), 500)


def retry_after_s(value: str | None) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be asked (None when it can): checked before any request is built."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is not a number in 0-65535
    except ValueError as exc:
        return f"expected an http:// or https:// URL, found '{shown_url(url)}' ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"expected an http:// or https:// URL, found '{shown_url(url)}'"
    if any(not c.isprintable() or c.isspace() for c in url):
        # http.client would refuse it at each request: one sample error each, none sent
        return (
            f"expected an http:// or https:// URL, found '{shown_url(url)}' (a space or a "
            "control character in it)"
        )
    return credentials_problem(url)


def credentials_problem(url: str) -> str | None:
    """A user name or password in ``url`` would be copied into every record of the run (its
    manifest, Dagster's stored outputs), and this client never sends it: refused."""
    try:
        userinfo = "@" in urlsplit(url).netloc
    except ValueError:
        userinfo = bool(re.search(r"//[^/?#]*@", url))
    if not userinfo:
        return None
    return (
        f"a user name or password in the URL is refused (it would be stored in the run's "
        f"records), found '{shown_url(url)}'; put the key in an environment variable and name "
        "it in options.api_key_env instead"
    )


def _connection(url: str, timeout_s: float) -> tuple[http.client.HTTPConnection, str]:
    problem = url_problem(url)
    if problem is not None:
        raise HttpFailure(problem, False)
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return kind(parts.hostname or "", parts.port, timeout=timeout_s), target


class _Deadline:
    """The socket of one exchange and the moment it must end: a timer shuts the socket down
    then, and each read waits at most for what is left, so no phase outlives the deadline."""

    def __init__(self, timeout_s: float):
        self.at = time.monotonic() + timeout_s
        self.sock: socket.socket | None = None
        self.expired = threading.Event()
        self._timer = threading.Timer(timeout_s, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        self.expired.set()
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)

    def hold(self, sock: socket.socket | None) -> None:
        """Watch ``sock`` (connected just now); past the deadline already, give up at once."""
        self.sock = sock
        self.check()

    def check(self) -> None:
        """A TimeoutError past the deadline; else the socket's next wait is what is left."""
        remaining = self.at - time.monotonic()
        if self.expired.is_set() or remaining <= 0:
            raise TimeoutError
        if self.sock is not None:
            self.sock.settimeout(remaining)

    def passed(self) -> bool:
        return self.expired.is_set() or time.monotonic() >= self.at

    def close(self) -> None:
        self._timer.cancel()
        if self.sock is not None:
            self.sock.close()


def _read_capped(
    response: http.client.HTTPResponse, deadline: _Deadline, max_bytes: int, where: str
) -> bytes:
    declared = response.getheader("Content-Length") or ""
    too_big = f"{where}: the body is over max_response_bytes ({max_bytes} bytes)"
    if declared.isdigit() and int(declared) > max_bytes:
        raise HttpFailure(too_big, False)
    chunks: list[bytes] = []
    total = 0
    while True:  # until the body ends (an empty read)
        deadline.check()
        chunk = response.read1(CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > max_bytes:
            raise HttpFailure(too_big, False)
        chunks.append(chunk)
    if deadline.passed():  # the timer shut the socket: what was read is not the whole body
        raise TimeoutError
    if declared.isdigit() and total < int(declared):
        raise HttpFailure(f"{where}: the body ended after {total} of {declared} bytes", True)
    return b"".join(chunks)


def _exchange(
    conn: http.client.HTTPConnection,
    target: str,
    request: tuple[bytes, dict[str, str]],
    deadline: _Deadline,
    max_bytes: int,
    url: str,
) -> Answer:
    conn.connect()
    deadline.hold(conn.sock)
    conn.request("POST", target, body=request[0], headers=request[1])
    response = conn.getresponse()
    try:
        status = response.status
        where = f"HTTP {status} from {url}"
        ok = 200 <= status < 300
        return Answer(
            status,
            response.getheader("Content-Type") or "",
            retry_after_s(response.getheader("Retry-After")),
            _read_capped(response, deadline, max_bytes, where) if ok else b"",
        )
    finally:
        response.close()


def post(
    url: str, data: bytes, headers: dict[str, str], timeout_s: float, max_bytes: int
) -> Answer:
    """POST ``data``; the answer's status and body (read for 2xx only). Redirects are answers
    like any other status: never followed, so headers never go to another host."""
    conn, target = _connection(url, timeout_s)
    url = shown_url(url)  # from here on, for messages only
    deadline = _Deadline(timeout_s)
    try:
        return _exchange(conn, target, (data, headers), deadline, max_bytes, url)
    except ValueError:  # http.client's message quotes the header, which may be the API key
        raise HttpFailure(
            f"{url}: a request header is not valid (a newline in it?)", False
        ) from None
    except (OSError, http.client.HTTPException) as exc:
        if deadline.passed():
            message = f"TimeoutError for {url}: no complete answer within {timeout_s:g} s"
            raise HttpFailure(message, True) from None
        raise HttpFailure(f"{type(exc).__name__} for {url}: {printable(str(exc))}", True) from None
    finally:
        deadline.close()
        conn.close()
