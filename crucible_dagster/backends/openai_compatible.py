"""A client of the OpenAI-compatible chat completions API (OpenAI, vLLM, llama.cpp, Ollama, ...).

``backend: {id: openai_compatible, endpoint_url: http://127.0.0.1:8000/v1, options: {model: m}}``.
The key comes from the environment (``api_key_env``, default ``OPENAI_API_KEY``; none is sent
when it is unset, as local servers expect). Each sample is one request, at most
``concurrency`` at a time; a timeout, a connection error, 429 or a 5xx is retried with
exponential backoff (``Retry-After`` honoured), ``max_retries`` times. Answers are cached on
disk under the sha256 of the request's content (URL, model and body, never the key), so a
re-run sends nothing. Requests can be hedged (``reliability.hedging``) to cut tail latency.
Only the standard library speaks HTTP here: one JSON POST needs nothing more.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import Field

from crucible_dagster.backends.base import BackendOptions, Request, Response
from crucible_dagster.common.files import atomic_write_text
from crucible_dagster.experiment.ir import BackendRef, Hedging
from crucible_dagster.reliability.hedging import HedgedCaller

CACHE_ENV = "CRUCIBLE_CACHE_DIR"
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class OpenAIOptions(BackendOptions):
    model: str = Field(description="The model name the server knows.")
    base_url: str | None = Field(
        default=None, description="API root ending in /v1; default: the backend's endpoint_url."
    )
    api_key_env: str = Field(
        default="OPENAI_API_KEY", description="Environment variable of the key."
    )
    system: str | None = Field(default=None, description="A system message before each input.")
    temperature: float = Field(default=0.0, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    timeout_s: float = Field(default=30.0, gt=0, description="Per request.")
    max_retries: int = Field(default=3, ge=0, le=10)
    backoff_s: float = Field(
        default=0.5, ge=0, description="First retry's wait; doubles each time."
    )
    concurrency: int = Field(default=4, ge=1, le=256, description="Requests in flight at once.")
    cache_dir: str | None = Field(
        default=None,
        description=f"Response cache; default ${CACHE_ENV}, else ~/.cache/crucible_dagster.",
    )
    cache: bool = Field(default=True, description="Read and write the response cache.")
    price_per_million_input: float | None = Field(default=None, ge=0, description="For cost.")
    price_per_million_output: float | None = Field(default=None, ge=0, description="For cost.")


class RequestFailed(RuntimeError):
    def __init__(self, message: str, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class OpenAICompatibleBackend:
    Options = OpenAIOptions

    def __init__(self, ref: BackendRef, options: OpenAIOptions):
        self.name = ref.id
        self.options = options
        base = options.base_url or ref.endpoint_url
        if not base:
            raise ValueError("backend: set endpoint_url (or options.base_url) to the API root")
        self.url = base.rstrip("/") + "/chat/completions"
        root = options.cache_dir or os.environ.get(CACHE_ENV) or "~/.cache/crucible_dagster"
        self.cache_root = Path(root).expanduser() / "responses"
        self.hedger: HedgedCaller | None = None

    def with_hedging(self, hedging: Hedging | None) -> OpenAICompatibleBackend:
        """Hedge this backend's requests as ``reliability.hedging`` says (None: never)."""
        self.hedger = HedgedCaller(hedging) if hedging is not None else None
        return self

    # --- one request -----------------------------------------------------------------------

    def body(self, value: Any) -> dict[str, Any]:
        messages = (
            list(value) if isinstance(value, list) else [{"role": "user", "content": str(value)}]
        )
        if self.options.system:
            messages = [{"role": "system", "content": self.options.system}, *messages]
        body: dict[str, Any] = {
            "model": self.options.model,
            "messages": messages,
            "temperature": self.options.temperature,
        }
        if self.options.max_tokens is not None:
            body["max_tokens"] = self.options.max_tokens
        return body

    def cache_key(self, body: dict[str, Any]) -> str:
        content = json.dumps({"url": self.url, "body": body}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(content.encode()).hexdigest()

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.options.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.options.timeout_s) as answer:
                payload: dict[str, Any] = json.loads(answer.read())
                return payload
        except urllib.error.HTTPError as exc:
            after = exc.headers.get("Retry-After") if exc.headers else None
            retry_after = float(after) if after and after.replace(".", "", 1).isdigit() else None
            raise RequestFailed(
                f"HTTP {exc.code} from {self.url}", exc.code in RETRYABLE_STATUS, retry_after
            ) from None
        except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RequestFailed(f"{type(exc).__name__} for {self.url}: {reason}", True) from None

    def _send_with_retries(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """The answer and the number of retries it took; the last error when none succeeded."""
        for attempt in range(self.options.max_retries + 1):
            try:
                return self._post(body), attempt
            except RequestFailed as exc:
                if not exc.retryable or attempt == self.options.max_retries:
                    raise
                wait = (
                    exc.retry_after
                    if exc.retry_after is not None
                    else self.options.backoff_s * 2**attempt
                )
                time.sleep(wait)
        raise AssertionError("unreachable")

    def _one(self, request: Request) -> Response:
        body = self.body(request.input)
        key = self.cache_key(body)
        cached = self.cache_root / key[:2] / f"{key}.json"
        began = time.perf_counter()
        if self.options.cache and cached.is_file():
            payload = json.loads(cached.read_text(encoding="utf-8"))["response"]
            return self._response(request, payload, began, cached=True)
        extra = 0
        try:
            if self.hedger is not None:
                (payload, retries), hedges = self.hedger.call(lambda: self._send_with_retries(body))
                extra = hedges
            else:
                payload, retries = self._send_with_retries(body)
        except RequestFailed as exc:
            latency = (time.perf_counter() - began) * 1000
            return Response(
                request.sample_id, latency_ms=latency, error=str(exc), backend=self.name
            )
        if self.options.cache:
            record = {"key": key, "url": self.url, "request": body, "response": payload}
            atomic_write_text(cached, json.dumps(record, sort_keys=True))
        answer = self._response(request, payload, began, cached=False)
        answer.extra_requests = extra + retries
        return answer

    def _response(
        self, request: Request, payload: dict[str, Any], began: float, cached: bool
    ) -> Response:
        latency = (time.perf_counter() - began) * 1000
        try:
            content = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            return Response(
                request.sample_id,
                latency_ms=latency,
                error="the answer has no choices[0].message.content",
                backend=self.name,
            )
        usage = payload.get("usage") or {}
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        return Response(
            request.sample_id,
            output=content,
            latency_ms=latency,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost=None if cached else self._cost(prompt, completion),
            cached=cached,
            backend=self.name,
        )

    def _cost(self, prompt: int | None, completion: int | None) -> float | None:
        prices = (self.options.price_per_million_input, self.options.price_per_million_output)
        if prices == (None, None) or prompt is None or completion is None:
            return None
        return (prompt * (prices[0] or 0) + completion * (prices[1] or 0)) / 1e6

    # --- a batch -----------------------------------------------------------------------------

    def predict(self, requests: Sequence[Request]) -> list[Response]:
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=self.options.concurrency) as pool:
            return list(pool.map(self._one, requests))
