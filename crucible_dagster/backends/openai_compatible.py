"""A client of the OpenAI-compatible chat completions API (OpenAI, vLLM, llama.cpp, Ollama, ...).

``backend: {id: openai_compatible, endpoint_url: http://127.0.0.1:8000/v1, options: {model: m}}``.
The key comes from the environment (``api_key_env``, default ``OPENAI_API_KEY``; none is sent
when it is unset, as local servers expect). Each sample is one request, at most
``concurrency`` at a time; a timeout, a connection error, 429 or a 5xx is retried with
exponential backoff (``Retry-After`` honoured up to ``max_backoff_s``), ``max_retries`` times.
``timeout_s`` is a deadline for each whole request, the body is capped at ``max_response_bytes``
and redirects are never followed (see ``backends/http.py``). Any answer that is not a chat
completion (content type, UTF-8, JSON, ``choices``, ``usage``) is that sample's error, with the
URL and status. Answers are cached on disk under the sha256 of the request's content (URL,
model and body, never the key), so a re-run sends nothing; an entry is used only when its
stored key and request are this request's and its answer matches its digest.
Requests can be hedged (``reliability.hedging``) to cut tail latency.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

from crucible_dagster.backends.base import Request, Response
from crucible_dagster.backends.circuit import CircuitBreaker, CircuitOpen
from crucible_dagster.backends.gate import Prices, RequestGate, RequestPlan
from crucible_dagster.backends.http import (
    HttpFailure,
    post,
    printable,
    shown_url,
    url_problem,
)
from crucible_dagster.backends.openai_answers import completion, decoded
from crucible_dagster.backends.openai_options import (
    CACHE_ENV,
    RETRYABLE_STATUS,
    OpenAIOptions,
)
from crucible_dagster.backends.rate_limit import RateLimitClosed, RateLimiter
from crucible_dagster.budget import BudgetExhausted, Ledger
from crucible_dagster.common.files import atomic_write_text
from crucible_dagster.experiment.ir import BackendRef, Hedging
from crucible_dagster.experiment.ir import CircuitBreaker as CircuitSettings
from crucible_dagster.hedging.caller import HedgedCaller
from crucible_dagster.telemetry import record
from crucible_dagster.telemetry.kinds import error_kind


def digest(value: Any) -> str:
    """The sha256 of ``value``'s canonical JSON: a cache entry's key and its answer's check."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))  # the key as before
    return hashlib.sha256(text.encode()).hexdigest()


def api_root(ref: BackendRef, options: OpenAIOptions) -> tuple[str | None, str]:
    """The API root and the field it came from: ``options.base_url_env``'s variable when it is
    set and not empty, else ``options.base_url``, else ``endpoint_url``. Read when the backend
    is checked (validate, the Dagster loader, run start) and built, from the same environment."""
    if options.base_url_env is not None:
        value = os.environ.get(options.base_url_env)
        if value:
            return value, f"options.base_url_env (${options.base_url_env})"
    if options.base_url is not None:
        return options.base_url, "options.base_url"
    return ref.endpoint_url, "endpoint_url"


class OpenAICompatibleBackend:
    Options = OpenAIOptions

    def __init__(self, ref: BackendRef, options: OpenAIOptions):
        self.name = ref.id
        self.options = options
        base, field = api_root(ref, options)
        if not base:
            raise ValueError("backend: set endpoint_url (or options.base_url) to the API root")
        problem = url_problem(base)
        if problem is not None:
            raise ValueError(f"backend: {field}: {problem}")
        self.url = base.rstrip("/") + "/chat/completions"
        self.shown_url = shown_url(self.url)  # in errors and the cache: no password
        root = options.cache_dir or os.environ.get(CACHE_ENV) or "~/.cache/crucible_dagster"
        self.cache_root = Path(root).expanduser() / "responses"
        self.hedger: HedgedCaller | None = None
        self.breaker: CircuitBreaker | None = None
        prices = Prices(options.price_per_million_input, options.price_per_million_output)
        self.gate = RequestGate(
            RateLimiter(options.requests_per_minute, options.tokens_per_minute),
            options.tokenizer,
            options.model,
            options.expected_completion_tokens,
            options.max_tokens,
            prices,
        )

    @classmethod
    def check_endpoint(cls, ref: BackendRef, options: OpenAIOptions) -> tuple[str, str] | None:
        """(field, problem) of a URL that cannot be asked: ``crucible validate``, the Dagster
        loader and run start refuse it at its line, before any run directory is made."""
        urls = [("endpoint_url", ref.endpoint_url), ("options.base_url", options.base_url)]
        root, field = api_root(ref, options)
        if field.startswith("options.base_url_env"):
            urls.append((field, root))
        for where, url in urls:
            problem = url_problem(url) if url is not None else None
            if problem is not None:
                return where, problem
        return None

    def with_hedging(self, hedging: Hedging | None) -> OpenAICompatibleBackend:
        """Hedge this backend's requests as ``reliability.hedging`` says (None: never)."""
        self.hedger = HedgedCaller(hedging) if hedging is not None else None
        return self

    def with_circuit_breaker(self, settings: CircuitSettings | None) -> OpenAICompatibleBackend:
        """Stop sending while the service fails, as ``reliability.circuit_breaker`` says (None:
        never): ``backends.circuit``."""
        self.breaker = (
            CircuitBreaker(settings, self.name, self.options.model)
            if settings is not None
            else None
        )
        return self

    def with_budget(self, ledger: Ledger | None) -> OpenAICompatibleBackend:
        """Count every request against ``ledger`` (the run's budget; None: no budget)."""
        self.gate.ledger = ledger
        return self

    # --- one request -----------------------------------------------------------------------

    def body(self, value: Any) -> dict[str, Any]:
        """The request's JSON: ``value`` is a message list (a prompt's) or the text of one user
        message; ``options.system`` goes first (a prompt with its own system message is refused
        with it by validate, so no request has two)."""
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

    def request_body(self, request: Request) -> dict[str, Any]:
        """What is sent for ``request`` (and what the dry run prices): its prompt's messages
        when it has them, else its input as one user message."""
        return self.body(request.messages if request.messages is not None else request.input)

    def cache_key(self, body: dict[str, Any]) -> str:
        return digest({"url": self.url, "body": body})

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """One request through the circuit breaker and the gate (rate, budget): its answer, or
        an HttpFailure (an open circuit's not worth retrying: the request was not sent)."""
        breaker = self.breaker
        if breaker is not None:
            try:
                breaker.before()
            except CircuitOpen as exc:
                raise HttpFailure(f"{self.shown_url}: {exc}", False) from None
        failed: bool | None = None  # None: not sent, or not ended (the breaker takes no note)
        try:
            try:
                ticket = self.gate.enter(body)
            except (BudgetExhausted, RateLimitClosed) as exc:
                raise HttpFailure(str(exc), False) from None
            usage: tuple[int | None, int | None] | None = None
            try:
                payload = self._post_once(body)
                failed = False
                usage = completion(payload, self.shown_url)[1:]
                return payload
            except HttpFailure as exc:
                failed = exc.retryable if failed is None else False  # a bad answer is an answer
                raise
            finally:
                self.gate.leave(ticket, usage)
        finally:
            if breaker is not None:
                breaker.settle(failed)

    def _post_once(self, body: dict[str, Any]) -> dict[str, Any]:
        """One request's checked answer; an HttpFailure with the URL and status otherwise."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.options.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        options = self.options
        data = json.dumps(body).encode()
        answer = post(self.url, data, headers, options.timeout_s, options.max_response_bytes)
        where = f"HTTP {answer.status} from {self.shown_url}"
        if 300 <= answer.status < 400:
            raise HttpFailure(f"{where}: redirects are not followed", False)
        if not 200 <= answer.status < 300:
            retryable = answer.status in RETRYABLE_STATUS
            raise HttpFailure(where, retryable, answer.retry_after)
        payload = decoded(answer, where)
        completion(payload, where)  # the shape is checked before anything is cached
        return cast(dict[str, Any], payload)

    def _wait_s(self, failure: HttpFailure, attempt: int) -> float:
        """Before the next attempt: ``Retry-After`` or the backoff, never over max_backoff_s."""
        wanted = failure.retry_after
        if wanted is None:
            wanted = self.options.backoff_s * 2**attempt
        return min(wanted, self.options.max_backoff_s)

    def _send_with_retries(
        self, body: dict[str, Any], sample_id: str | None = None
    ) -> tuple[dict[str, Any], int]:
        """The answer and the number of retries it took; the last error when none succeeded.
        Each retry is a ``retry`` telemetry event: why, and how long it waited."""
        for attempt in range(self.options.max_retries + 1):
            try:
                return self._post(body), attempt
            except HttpFailure as exc:
                if not exc.retryable or attempt == self.options.max_retries:
                    raise
                if self.breaker is not None and self.breaker.refusing():
                    raise  # the circuit opened: the sample keeps this, its last real error
                wait = self._wait_s(exc, attempt)
                record(
                    "retry",
                    sample_id=sample_id,
                    attempt=attempt + 1,
                    error_kind=error_kind(str(exc)),
                    wait_ms=wait * 1000,
                    provider="openai_compatible",
                    model=self.options.model[:512],
                )
                time.sleep(wait)
        raise AssertionError("unreachable")

    # --- the cache ---------------------------------------------------------------------------

    def _cache_path(self, key: str) -> Path:
        return self.cache_root / key[:2] / f"{key}.json"

    def _linked_folders(self, key: str) -> list[Path]:
        """The folders of ``key``'s entry under the cache folder that are symlinks: such an
        entry is a miss, and the link is replaced before writing, never written through."""
        folders = (self.cache_root, self.cache_root / key[:2])
        return [folder for folder in folders if folder.is_symlink()]

    def _cached(self, key: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The stored answer to exactly this request, or None: an entry that is unreadable, is
        another request's, or whose answer was edited is a miss (and is written afresh)."""
        path = self._cache_path(key)
        try:
            if (
                self._linked_folders(key)
                or not path.is_file()
                or path.stat().st_size > 2 * self.options.max_response_bytes
            ):
                return None
            record = json.loads(path.read_text(encoding="utf-8"))
            payload = record["response"]
            matches = (
                record["key"] == key
                and record["url"] == self.shown_url
                and record["request"] == body
                and record["response_sha256"] == digest(payload)
            )
            if not matches:
                return None
            completion(payload, "cache")
        except (OSError, ValueError, RecursionError, KeyError, TypeError, HttpFailure):
            return None
        return cast(dict[str, Any], payload)

    def _store(self, key: str, body: dict[str, Any], payload: dict[str, Any]) -> None:
        """Best effort: an answer that cannot be cached is still this sample's answer."""
        record = {
            "key": key,
            "url": self.shown_url,
            "request": body,
            "response": payload,
            "response_sha256": digest(payload),
        }
        with contextlib.suppress(OSError):
            for link in self._linked_folders(key):
                link.unlink()  # the link only: what it points to is left as it was
            atomic_write_text(self._cache_path(key), json.dumps(record, sort_keys=True))

    # --- one sample --------------------------------------------------------------------------

    def _one(self, request: Request) -> Response:
        body = self.request_body(request)
        key = self.cache_key(body)
        began = time.perf_counter()
        payload = self._cached(key, body) if self.options.cache else None
        if payload is not None:
            return self._response(request, payload, began, cached=True)
        extra = 0
        try:
            if self.hedger is not None:
                (payload, retries), hedges = self.hedger.call(
                    lambda: self._send_with_retries(body, request.sample_id)
                )
                extra = hedges
            else:
                payload, retries = self._send_with_retries(body, request.sample_id)
        except HttpFailure as exc:
            latency = (time.perf_counter() - began) * 1000
            return Response(
                request.sample_id, latency_ms=latency, error=str(exc), backend=self.name
            )
        if self.options.cache:
            self._store(key, body, payload)
        answer = self._response(request, payload, began, cached=False)
        answer.extra_requests = extra + retries
        return answer

    def _response(
        self, request: Request, payload: dict[str, Any], began: float, cached: bool
    ) -> Response:
        latency = (time.perf_counter() - began) * 1000
        content, prompt, completion_tokens = completion(payload, self.shown_url)
        return Response(
            request.sample_id,
            output=content,
            latency_ms=latency,
            prompt_tokens=prompt,
            completion_tokens=completion_tokens,
            cost=None if cached else self._cost(prompt, completion_tokens),
            cached=cached,
            backend=self.name,
        )

    def _cost(self, prompt: int | None, completion: int | None) -> float | None:
        prices = (self.options.price_per_million_input, self.options.price_per_million_output)
        if prices == (None, None) or prompt is None or completion is None:
            return None
        return (prompt * (prices[0] or 0) + completion * (prices[1] or 0)) / 1e6

    # --- a dry run ---------------------------------------------------------------------------

    def plan(self, requests: Sequence[Request], planned: set[str]) -> RequestPlan:
        """What ``predict(requests)`` would send, estimated, sending nothing: an answer in the
        cache, or asked earlier in the same plan (``planned``: the keys of a sweep's earlier
        trials, which the cache then answers), costs nothing."""
        plan = RequestPlan(self.options.tokenizer, self.gate.prices.priced)
        for request in requests:
            body = self.request_body(request)
            key = self.cache_key(body)
            if self.options.cache and (key in planned or self._cached(key, body) is not None):
                plan.cached += 1
                continue
            planned.add(key)
            plan.add(self.gate.estimate(body))
        plan.completion_from = (
            "expected_completion_tokens"
            if self.options.expected_completion_tokens is not None
            else "max_tokens (an upper bound)"
            if self.options.max_tokens is not None
            else "unknown (0 counted): set expected_completion_tokens or max_tokens"
        )
        return plan

    # --- a batch -----------------------------------------------------------------------------

    def _one_kept(self, request: Request) -> Response:
        """``_one``, with anything unforeseen made this sample's error: the batch goes on."""
        try:
            return self._one(request)
        except Exception as exc:
            message = printable(f"{type(exc).__name__}: {exc}")
            return Response(request.sample_id, error=message, backend=self.name)

    def predict(self, requests: Sequence[Request]) -> list[Response]:
        if not requests:
            return []
        self.gate.limiter.reopen()
        pool = ThreadPoolExecutor(max_workers=self.options.concurrency)
        try:
            # each request runs in a copy of this thread's context: its retries and hedges are
            # recorded in the running stage's telemetry
            contexts = [contextvars.copy_context() for _ in requests]
            return list(pool.map(lambda c, r: c.run(self._one_kept, r), contexts, requests))
        except BaseException:
            # an interrupt: requests waiting for the rate give up, queued ones never start
            self.gate.limiter.close()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)
