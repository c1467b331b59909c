"""Backends: the registry, the OpenAI-compatible client against a real HTTP server on
127.0.0.1 (retries, timeouts, the cache, fallback), callables and scikit-learn, and hedging."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crucible_dagster.backends.base import Request
from crucible_dagster.backends.openai_compatible import OpenAICompatibleBackend
from crucible_dagster.backends.registry import BackendError, build_backend, check_backend
from crucible_dagster.backends.scikit_learn import SklearnBackend
from crucible_dagster.contrib.llm_server import default_answer, llm_server
from crucible_dagster.experiment.ir import BackendRef, Hedging
from crucible_dagster.hedging.caller import HedgedCaller, quantile
from tests.http_probes import recorded_waits


def ref(**data: object) -> BackendRef:
    return BackendRef.model_validate(data)


def questions(n: int) -> list[Request]:
    return [Request(f"q{i}", f"is {i} even?") for i in range(n)]


def test_unknown_backend_and_bad_options_name_the_field() -> None:
    with pytest.raises(
        BackendError,
        match=r"backend.id: expected a backend \(callable, noop, openai_compatible, sklearn",
    ):
        check_backend(ref(id="openai_gpt4"))
    with pytest.raises(BackendError, match=r"backend.options.concurrency: .*(found 0)"):
        check_backend(ref(id="openai_compatible", options={"model": "m", "concurrency": 0}))
    with pytest.raises(BackendError, match=r"backend.options.modle: Extra inputs"):
        check_backend(ref(id="openai_compatible", options={"model": "m", "modle": "x"}))
    with pytest.raises(BackendError, match=r"backend.fallback.id: expected a backend"):
        check_backend(
            ref(
                id="callable",
                options={"function": "tests.helpers:double_all"},
                fallback={"id": "nope"},
            )
        )


def test_openai_client_answers_counts_tokens_and_caches(tmp_path: Path) -> None:
    with llm_server() as (url, server):
        backend = build_backend(
            ref(
                id="openai_compatible",
                endpoint_url=url,
                options={
                    "model": "m1",
                    "cache_dir": str(tmp_path),
                    "price_per_million_input": 1.0,
                    "price_per_million_output": 2.0,
                },
            )
        )
        first = backend.predict([Request("a", "2+3"), Request("b", "hello there")])
        assert [r.output for r in first] == ["5", "echo: hello there"]
        assert first[0].prompt_tokens == 1 and first[0].completion_tokens == 1
        assert first[0].cost == pytest.approx((1 * 1.0 + 1 * 2.0) / 1e6)
        assert not any(r.cached for r in first) and server.requests["m1"] == 2
        again = backend.predict([Request("a", "2+3"), Request("b", "hello there")])
        assert [r.output for r in again] == ["5", "echo: hello there"]
        assert all(r.cached for r in again) and server.requests["m1"] == 2  # nothing sent
        assert len(list(tmp_path.glob("responses/*/*.json"))) == 2


@pytest.mark.slow
def test_retries_with_backoff_then_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with llm_server() as (url, server):
        options = {
            "model": "m",
            "cache": False,
            "backoff_s": 0.05,
            "max_retries": 3,
            "concurrency": 1,
        }
        backend = build_backend(ref(id="openai_compatible", endpoint_url=url, options=options))
        waits = recorded_waits(backend, monkeypatch)
        server.fail_next(2, status=503)
        (answer,) = backend.predict([Request("a", "1+1")])
        assert answer.output == "2" and answer.error is None
        assert answer.extra_requests == 2 and server.requests["m"] == 3
        assert waits == [0.05, 0.1]  # backoff_s, then twice it
        server.fail_next(1, status=429, retry_after=0.2)
        (answer,) = backend.predict([Request("b", "2+2")])
        assert answer.output == "4" and waits[2:] == [0.2]  # Retry-After
        server.fail_next(1, status=400)  # not retryable: one request, an error for that sample
        (answer,) = backend.predict([Request("c", "3+3")])
        assert answer.error == f"HTTP 400 from {url}/chat/completions"


@pytest.mark.slow
def test_timeout_gives_up_after_the_retries(tmp_path: Path) -> None:
    with llm_server() as (url, server):
        options = {"model": "m", "cache": False, "timeout_s": 0.2, "max_retries": 1, "backoff_s": 0}
        backend = build_backend(ref(id="openai_compatible", endpoint_url=url, options=options))
        server.stall_s = 1.0
        (answer,) = backend.predict([Request("a", "1+1")])
        assert answer.output is None and "TimeoutError" in (answer.error or "")
        assert server.requests["m"] == 2


def test_fallback_takes_only_the_samples_the_primary_failed() -> None:
    with llm_server() as (url, server):
        backend = build_backend(
            ref(
                id="openai_compatible",
                endpoint_url=url,
                options={"model": "primary", "cache": False, "max_retries": 0, "concurrency": 1},
                fallback={
                    "id": "openai_compatible",
                    "endpoint_url": url,
                    "options": {"model": "backup", "cache": False},
                },
            )
        )
        server.fail_next(1, status=500)
        answers = backend.predict([Request("a", "1+1"), Request("b", "2+2")])
        assert [a.output for a in answers] == ["2", "4"]
        assert [a.backend for a in answers].count("openai_compatible") == 2
        assert server.requests == {"primary": 2, "backup": 1}
        assert sorted(a.extra_requests for a in answers) == [0, 1]


def test_callable_backend_and_its_failures() -> None:
    backend = build_backend(ref(id="callable", options={"function": "tests.helpers:double_all"}))
    answers = backend.predict([Request("a", 2), Request("b", 5)])
    assert [a.output for a in answers] == [4, 10]
    broken = build_backend(ref(id="callable", options={"function": "tests.helpers:fails_always"}))
    (answer,) = broken.predict([Request("a", 1)])
    assert answer.output is None and answer.error == "RuntimeError: this backend always fails"


@pytest.mark.slow
def test_sklearn_backend_fits_and_predicts_out_of_fold() -> None:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    features, target = data.data, data.target.to_numpy()
    backend = build_backend(ref(id="sklearn", options={"estimator": "logistic_regression"}))
    assert isinstance(backend, SklearnBackend)
    out_of_fold = backend.out_of_fold(features, target, folds=5, seed=1)
    assert len(out_of_fold) == len(target) and {a.sample_id for a in out_of_fold} == {
        str(i) for i in features.index
    }
    accuracy = sum(a.output == t for a, t in zip(out_of_fold, target, strict=True)) / len(target)
    assert 0.95 < accuracy < 1.0
    assert all(0.5 <= (a.confidence or 0) <= 1 for a in out_of_fold)
    backend.fit(features, target, seed=1)
    rows = [Request(str(i), features.loc[i].to_dict()) for i in features.index[:3]]
    expected = list(backend.estimator.predict(features.iloc[:3]))
    assert [a.output for a in backend.predict(rows)] == expected


def test_quantile_matches_numpy() -> None:
    import numpy as np

    values = [random.Random(3).random() for _ in range(101)]
    for q in (0.0, 0.5, 0.95, 0.999, 1.0):
        assert quantile(values, q) == pytest.approx(float(np.quantile(values, q)))


def test_hedging_delays_by_strategy() -> None:
    caller = HedgedCaller(Hedging(strategy="fixed", delay_ms=30, max_hedges=2))
    assert (caller.delay_ms(1), caller.delay_ms(2), caller.delay_ms(3)) == (30.0, 30.0, None)
    backoff = HedgedCaller(Hedging(strategy="exponential_backoff", delay_ms=10, max_hedges=3))
    assert [backoff.delay_ms(k) for k in (1, 2, 3, 4)] == [10.0, 20.0, 40.0, None]
    percentile = HedgedCaller(Hedging(strategy="percentile", percentile=90))
    assert percentile.delay_ms(1) is None  # fewer than 20 observations
    percentile._latencies.extend(float(v) for v in range(1, 101))
    assert percentile.delay_ms(1) == pytest.approx(quantile([float(v) for v in range(1, 101)], 0.9))
    adaptive = HedgedCaller(Hedging(strategy="adaptive", budget_percent=2))
    adaptive._latencies.extend(float(v) for v in range(1, 101))
    assert adaptive.delay_ms(1) == pytest.approx(98.02)
    loaded = HedgedCaller(Hedging(strategy="workload_aware", options={"capacity": 4}))
    loaded._latencies.extend(float(v) for v in range(1, 101))
    loaded.in_flight = 2
    assert loaded.delay_ms(1) == pytest.approx(
        quantile([float(v) for v in range(1, 101)], 0.95) * 1.5
    )
    budget = HedgedCaller(Hedging(strategy="fixed", delay_ms=1, budget_percent=10))
    budget.primaries, budget.hedges = 10, 1
    assert budget.delay_ms(1) == 1.0  # when a hedge is due; the budget decides when it is
    assert not budget._take_budget(1, 0.0)  # 1 hedge per 10 requests is the budget, spent
    budget.primaries = 20
    assert budget._take_budget(1, 0.0) and budget.hedges == 2


#: the longest a held request waits for its release: a hedge that never came fails the
#: test's assertions (the held answer won), never hangs it
HOLD_S = 60.0


def held_once(release: threading.Event) -> Callable[[], str]:
    """A request whose first attempt is held until ``release`` and answers "late"; later
    attempts answer "early" at once. Only a hedge can answer before the release."""
    first = [True]

    def request() -> str:
        try:
            first.pop()  # atomic: only one attempt finds it
        except IndexError:
            return "early"
        release.wait(HOLD_S)
        return "late"

    return request


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` (bounded: a test fails saying what never happened, never hangs)."""
    deadline = time.monotonic() + HOLD_S
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.005)


def test_a_stalled_request_is_hedged_once_the_budget_has_room_again() -> None:
    """The budget was spent when the stalled request's hedge fell due; another request made
    room for it, and it was hedged then, not left to stall to the end."""
    release = threading.Event()
    request = held_once(release)
    caller = HedgedCaller(Hedging(strategy="fixed", delay_ms=20, budget_percent=100))
    caller.hedges = 1  # spent: the stalled call below makes 1 request against 1 hedge
    answers: list[tuple[str, int]] = []
    thread = threading.Thread(target=lambda: answers.append(caller.call(request)))
    thread.start()
    try:
        wait_until(lambda: 1 in caller._refused, "the stalled request's hedge refused")
        assert caller.call(lambda: "quick") == ("quick", 0)  # one more request: room for one
        wait_until(lambda: bool(answers), "an answer for the stalled request")
    finally:
        release.set()
        thread.join()
    assert answers == [("early", 1)]  # its hedge answered while the first attempt was held
    assert caller.summary()["hedges"] == 2 and caller.summary()["hedge_wins"] == 1


def test_room_in_a_spent_budget_goes_to_the_request_that_has_waited_longest() -> None:
    """Two requests stall while the budget is spent; one more request makes room for one
    hedge: it goes to the one whose hedge fell due first, not to whichever asks next."""
    release = threading.Event()
    first_attempts = {"A", "B"}
    lock = threading.Lock()

    def request(name: str) -> str:
        with lock:
            stalls = name in first_attempts
            first_attempts.discard(name)
        if stalls:
            release.wait(HOLD_S)
        return f"{name} {'late' if stalls else 'early'}"

    caller = HedgedCaller(Hedging(strategy="fixed", delay_ms=20, budget_percent=100))
    caller.hedges = 2  # spent once A and B have started: 2 hedges against 2 requests
    results: dict[str, tuple[str, int]] = {}

    def ask(name: str) -> None:
        results[name] = caller.call(lambda: request(name))

    threads = {name: threading.Thread(target=ask, args=(name,)) for name in ("A", "B")}
    try:
        threads["A"].start()
        wait_until(lambda: 1 in caller._refused, "A's hedge refused")
        threads["B"].start()
        wait_until(lambda: 2 in caller._refused, "B's hedge refused")
        assert caller._refused[1] < caller._refused[2]  # A's fell due first
        assert caller.call(lambda: "quick") == ("quick", 0)  # room for exactly one hedge
        wait_until(lambda: "A" in results, "an answer for A")
        assert "B" not in results  # B still waits: its hedge had no room
    finally:
        release.set()
        for thread in threads.values():
            thread.join()
    assert results == {"A": ("A early", 1), "B": ("B late", 0)}


def test_a_hedge_answers_when_the_first_request_stalls() -> None:
    from crucible_dagster.telemetry import recording

    release = threading.Event()
    caller = HedgedCaller(Hedging(strategy="fixed", delay_ms=20))
    events: list[tuple[str, dict[str, Any]]] = []
    try:
        with recording(lambda event, **fields: events.append((event, fields)), stage="predict"):
            assert caller.call(held_once(release)) == ("early", 1)  # before the held one could
    finally:
        release.set()
    assert caller.summary()["hedge_wins"] == 1
    # the hedge, and that it won, as a telemetry event of the running stage (issue 27)
    assert events == [("hedge", {"stage": "predict", "attempt": 1, "won": True})]


@pytest.mark.slow
def test_hedged_client_hedges_the_stalled_requests_and_takes_the_hedges_answer() -> None:
    """Every 20th question's first request is held by the server until the client has all
    its answers: only a hedge can answer it. Asserted by counts and order; how much of the
    tail hedging cuts is benchmarks/hedging_bench.py's figure, not a test's."""
    release = threading.Event()
    arrivals: dict[str, list[int]] = {}
    this_request = threading.local()  # the server answers each request on its own thread
    lock = threading.Lock()

    def latency(number: int, body: dict[str, object]) -> float:
        text = str(body["messages"][-1]["content"])  # type: ignore[index]
        with lock:
            arrivals.setdefault(text, []).append(number)
            first = len(arrivals[text]) == 1
        this_request.held = first and int(text.split()[1]) % 20 == 0
        if this_request.held:
            release.wait(HOLD_S)
        return 0.0

    def answer(model: str, messages: list[dict[str, Any]]) -> str:
        return "held" if this_request.held else default_answer(model, messages)

    stalled = {f"q{i}" for i in range(0, 200, 20)}
    with llm_server() as (url, server):
        server.latency_s, server.answer = latency, answer
        options = {"model": "m", "cache": False, "concurrency": 8, "max_retries": 0}
        backend = build_backend(ref(id="openai_compatible", endpoint_url=url, options=options))
        assert isinstance(backend, OpenAICompatibleBackend)
        backend.with_hedging(Hedging(strategy="fixed", delay_ms=40, max_hedges=1))
        try:
            answers = {a.sample_id: a for a in backend.predict(questions(200))}
        finally:
            release.set()
        assert not {a.sample_id: a.error for a in answers.values() if a.error}
        sent = sum(a.extra_requests for a in answers.values())
        wait_until(lambda: server.requests["m"] == 200 + sent, "every hedge at the server")
    assert backend.hedger is not None and backend.hedger.summary()["hedges"] == sent
    for sample_id in stalled:  # sent twice (the held request, its hedge): the hedge answered
        assert len(arrivals[f"is {sample_id[1:]} even?"]) == 2, sample_id
        assert answers[sample_id].extra_requests == 1
        assert answers[sample_id].output in ("yes", "no"), answers[sample_id].output
    assert backend.hedger.summary()["hedge_wins"] >= len(stalled)
