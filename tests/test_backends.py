"""Backends: the registry, the OpenAI-compatible client against a real HTTP server on
127.0.0.1 (retries, timeouts, the cache, fallback), callables and scikit-learn, and hedging."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from crucible_dagster.backends.base import Request
from crucible_dagster.backends.registry import BackendError, build_backend, check_backend
from crucible_dagster.backends.scikit_learn import SklearnBackend
from crucible_dagster.contrib.llm_server import llm_server
from crucible_dagster.experiment.ir import BackendRef, Hedging
from crucible_dagster.hedging.caller import HedgedCaller, quantile


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


def test_retries_with_backoff_then_succeeds(tmp_path: Path) -> None:
    with llm_server() as (url, server):
        options = {
            "model": "m",
            "cache": False,
            "backoff_s": 0.05,
            "max_retries": 3,
            "concurrency": 1,
        }
        backend = build_backend(ref(id="openai_compatible", endpoint_url=url, options=options))
        server.fail_next(2, status=503)
        began = time.perf_counter()
        (answer,) = backend.predict([Request("a", "1+1")])
        assert answer.output == "2" and answer.error is None
        assert answer.extra_requests == 2 and server.requests["m"] == 3
        assert time.perf_counter() - began >= 0.05 + 0.1  # 0.05 s, then 0.1 s
        server.fail_next(1, status=429, retry_after=0.2)
        began = time.perf_counter()
        (answer,) = backend.predict([Request("b", "2+2")])
        assert answer.output == "4" and time.perf_counter() - began >= 0.2  # Retry-After
        server.fail_next(1, status=400)  # not retryable: one request, an error for that sample
        (answer,) = backend.predict([Request("c", "3+3")])
        assert answer.error == f"HTTP 400 from {url}/chat/completions"


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


def stalls_once(seconds: float) -> Callable[[], str]:
    """A request whose first attempt stalls ``seconds`` and answers "late"; later ones "early"."""
    first = [True]

    def request() -> str:
        try:
            first.pop()  # atomic: only one attempt finds it
        except IndexError:
            return "early"
        time.sleep(seconds)
        return "late"

    return request


def test_a_stalled_request_is_hedged_once_the_budget_has_room_again() -> None:
    """The budget was spent when the stalled request's hedge fell due; other requests made
    room for it a moment later, and it was hedged then, not left to stall to the end."""
    request = stalls_once(1.0)
    caller = HedgedCaller(Hedging(strategy="fixed", delay_ms=20, budget_percent=100))
    caller.hedges = 1  # spent: the stalled call below makes 1 request against 1 hedge
    answers: list[tuple[str, int]] = []
    seconds: list[float] = []

    def stalled_call() -> None:
        began = time.perf_counter()
        answers.append(caller.call(request))
        seconds.append(time.perf_counter() - began)

    thread = threading.Thread(target=stalled_call)
    thread.start()
    time.sleep(0.1)  # its hedge is due and refused
    assert caller.call(lambda: "quick") == ("quick", 0)  # one more request: room for one hedge
    thread.join()
    assert answers == [("early", 1)]
    assert seconds[0] < 0.5  # hedged after the other request, not at 1 s


@pytest.mark.slow  # waits out stalled requests
def test_room_in_a_spent_budget_goes_to_the_request_that_has_waited_longest() -> None:
    """Two requests stall while the budget is spent; one more request makes room for one
    hedge: it goes to the one whose hedge fell due first, not to whichever asks next."""
    first_attempts = {"A", "B"}
    lock = threading.Lock()

    def request(name: str) -> str:
        with lock:
            stalls = name in first_attempts
            first_attempts.discard(name)
        time.sleep(1.0 if stalls else 0.0)
        return f"{name} {'late' if stalls else 'early'}"

    caller = HedgedCaller(Hedging(strategy="fixed", delay_ms=20, budget_percent=100))
    caller.hedges = 2  # spent once A and B have started: 2 hedges against 2 requests
    results: dict[str, tuple[tuple[str, int], float]] = {}

    def timed(name: str) -> None:
        began = time.perf_counter()
        answer = caller.call(lambda: request(name))
        results[name] = (answer, time.perf_counter() - began)

    threads = {name: threading.Thread(target=timed, args=(name,)) for name in ("A", "B")}
    threads["A"].start()
    time.sleep(0.08)  # A's hedge is due and refused
    threads["B"].start()
    time.sleep(0.08)  # B's too, later than A's
    assert caller.call(lambda: "quick") == ("quick", 0)  # room for exactly one hedge
    for thread in threads.values():
        thread.join()
    assert results["A"][0] == ("A early", 1) and results["A"][1] < 0.5
    assert results["B"][0] == ("B late", 0) and results["B"][1] >= 0.9


def test_a_hedge_answers_when_the_first_request_stalls() -> None:
    request = stalls_once(0.5)
    caller = HedgedCaller(Hedging(strategy="fixed", delay_ms=20))
    began = time.perf_counter()
    assert caller.call(request) == ("early", 1)
    assert time.perf_counter() - began < 0.3
    assert caller.summary()["hedge_wins"] == 1


STALL_S = 3.0


def test_hedged_client_cuts_the_tail_against_the_server(tmp_path: Path) -> None:
    seen: set[str] = set()

    def latency(number: int, body: dict[str, object]) -> float:
        """Every 20th question stalls the first time it is asked; a hedge of it does not."""
        text = str(body["messages"][-1]["content"])  # type: ignore[index]
        first = text not in seen
        seen.add(text)
        return STALL_S if first and int(text.split()[1]) % 20 == 0 else 0.005

    with llm_server() as (url, server):
        server.latency_s = latency
        options = {"model": "m", "cache": False, "concurrency": 8}
        backend = build_backend(ref(id="openai_compatible", endpoint_url=url, options=options))
        backend.with_hedging(Hedging(strategy="fixed", delay_ms=40, max_hedges=1))  # type: ignore[attr-defined]
        answers = backend.predict(questions(200))
        assert all(a.error is None for a in answers)
        # unhedged, 10 of 200 would take the whole stall; the bound is an order of magnitude
        # from both the hedge (40 ms) and the stall, so a loaded machine cannot tip it
        assert max(a.latency_ms for a in answers) < STALL_S * 1000 / 3
        hedged = {a.sample_id for a in answers if a.extra_requests}
        assert {f"q{i}" for i in range(0, 200, 20)} <= hedged and len(hedged) < 40
