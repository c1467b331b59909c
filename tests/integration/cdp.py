"""A small Chrome DevTools Protocol client for headless Chromium (Debian's package): enough to
open a page, run a line of JavaScript in it and take a screenshot, with no browser download."""

from __future__ import annotations

import atexit
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser_path() -> str | None:
    return next((shutil.which(n) for n in BROWSERS if shutil.which(n)), None)


class Page:
    def __init__(self, socket_: ClientConnection):
        self._socket = socket_
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self._socket.recv(timeout=60))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result") or {})

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def text(self) -> str:
        return str(self.evaluate("document.body ? document.body.innerText : ''") or "")

    def wait_for_text(self, needle: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if needle in text:
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} never appeared; the page says:\n{text[:3000]}")
            time.sleep(0.5)

    def click_button(self, label: str) -> bool:
        script = (
            "(() => { const b = [...document.querySelectorAll('button')]"
            f".find(e => e.innerText.trim() === {json.dumps(label)} && !e.disabled);"
            " if (b) { b.click(); return true; } return false; })()"
        )
        return bool(self.evaluate(script))

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Browser:
    """One headless Chromium a test process reuses, each page in a fresh browser context (a
    profile of its own: no cookie, storage or cache shared), instead of a browser launched per
    page. Stopped by ``close_browsers``, at the session's end or the process's exit."""

    def __init__(self, path: str, width: int, height: int):
        self.port = _free_port()
        # the profile is scratch: a helper process still flushing into it must not fail the test
        self._profile = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)
        self.proc = subprocess.Popen(
            [
                path,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--window-size={width},{height}",
                f"--remote-debugging-port={self.port}",
                f"--user-data-dir={self._profile.name}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # its own scratch folders (org.chromium.Chromium.*) go with the profile
            env={**os.environ, "TMPDIR": self._profile.name},
            start_new_session=True,  # its renderer and crash handler go with it
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}/json/version", timeout=2
                ) as r:
                    self.endpoint = str(json.loads(r.read())["webSocketDebuggerUrl"])
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.close()
                    raise
                time.sleep(0.2)

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)
        self._profile.cleanup()


_BROWSERS: dict[tuple[str, int, int], _Browser] = {}


def close_browsers() -> None:
    """Stop every browser this process started (the integration conftest calls it at the
    session's end; ``atexit`` covers a process that ends otherwise)."""
    while _BROWSERS:
        _BROWSERS.popitem()[1].close()


atexit.register(close_browsers)


def _running_browser(path: str, width: int, height: int) -> _Browser:
    key = (path, width, height)
    running = _BROWSERS.get(key)
    if running is None or running.proc.poll() is not None:
        running = _BROWSERS[key] = _Browser(path, width, height)
    return running


@contextmanager
def headless_page(browser: str, width: int = 1600, height: int = 1200) -> Iterator[Page]:
    """A blank page in a browser context of its own, closed with its context after."""
    running = _running_browser(browser, width, height)
    with connect(running.endpoint, max_size=None) as control:
        target = Page(control)
        context_id = target.call("Target.createBrowserContext")["browserContextId"]
        try:
            page_id = target.call(
                "Target.createTarget", url="about:blank", browserContextId=context_id
            )["targetId"]
            url = f"ws://127.0.0.1:{running.port}/devtools/page/{page_id}"
            with connect(url, max_size=None) as ws:
                yield Page(ws)
        finally:
            target.call("Target.disposeBrowserContext", browserContextId=context_id)
