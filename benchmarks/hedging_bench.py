"""Issue 16 figure: hedged requests against a heavy-tailed server, beside the same requests unhedged.

The anchor is Dean and Barroso, "The Tail at Scale" (CACM 56(2), 2013): in a BigTable
benchmark, hedging a request after the 95th-percentile expected latency cut the 99.9th
percentile from 1,800 ms to 74 ms while sending about 2% more requests.

Our server (the test suite's OpenAI-compatible one, real HTTP on 127.0.0.1) answers most
requests in about 10 ms (lognormal, sigma 0.3) and stalls 1% of them for a Pareto-distributed
300 ms to 3 s, independently per request, so a hedge usually lands on a fast server. Every
side sends the same prompts through the same client (8 at a time, no cache), in rotating
order over the repeats; the figures pool every request of every repeat.
"""

from __future__ import annotations

import random
from typing import Any

from benchmarks.harness import Row, Timing
from crucible_dagster.backends.base import Request
from crucible_dagster.backends.openai_compatible import OpenAICompatibleBackend
from crucible_dagster.backends.registry import build_backend
from crucible_dagster.contrib.llm_server import llm_server
from crucible_dagster.experiment.ir import BackendRef, Hedging

REQUESTS = 1000
REPEATS = 4
STALL_SHARE = 0.01


def heavy_tail(seed: int) -> Any:
    rng = random.Random(seed)

    def latency(number: int, body: dict[str, Any]) -> float:
        if rng.random() < STALL_SHARE:
            return min(0.3 * rng.paretovariate(1.5), 3.0)
        return rng.lognormvariate(-4.6, 0.3)  # median e^-4.6 s = 10 ms

    return latency


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def hedging_rows() -> list[Row]:
    sides: dict[str, Hedging | None] = {
        "unhedged": None,
        "percentile p95": Hedging(strategy="percentile", percentile=95, max_hedges=1),
        "adaptive, 2% budget": Hedging(strategy="adaptive", budget_percent=2, max_hedges=1),
    }
    print(
        f"settings: {REQUESTS} requests x {REPEATS} repeats per side, concurrency 8, no cache, "
        f"{STALL_SHARE:.0%} of requests stall 0.3-3 s (Pareto 1.5), the rest ~10 ms; alike on every side"
    )
    latencies: dict[str, list[float]] = {name: [] for name in sides}
    extra: dict[str, int] = dict.fromkeys(sides, 0)
    with llm_server() as (url, server):
        server.latency_s = heavy_tail(2013)
        ref = BackendRef.model_validate(
            {
                "id": "openai_compatible",
                "endpoint_url": url,
                "options": {"model": "m", "cache": False, "concurrency": 8},
            }
        )
        names = list(sides)
        for repeat in range(REPEATS):
            order = names[repeat % len(names) :] + names[: repeat % len(names)]
            for name in order:
                backend = build_backend(ref)
                assert isinstance(backend, OpenAICompatibleBackend)
                backend.with_hedging(sides[name])  # a fresh policy: its estimates start empty
                prompts = [Request(f"{repeat}-{i}", f"is {i} even?") for i in range(REQUESTS)]
                answers = backend.predict(prompts)
                assert all(a.error is None for a in answers)
                latencies[name] += [a.latency_ms / 1000 for a in answers]
                extra[name] += sum(a.extra_requests for a in answers)
    base = latencies["unhedged"]
    rows = []
    for name in names[1:]:
        share = extra[name] / (REQUESTS * REPEATS)
        for label, q in (("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)):
            rows.append(
                Row(
                    f"{label} latency, hedged ({name})",
                    Timing.fixed(_percentile(latencies[name], q)),
                    Timing.fixed(_percentile(base, q)),
                    "the same requests unhedged",
                    "<1x" if label != "p50" else "~1x",
                    note=(
                        f"{share:.1%} extra requests; Tail at Scale: p99.9 1,800 ms -> 74 ms "
                        "(0.041x) for about 2% more"
                    )
                    if label == "p99.9"
                    else "",
                )
            )
    return rows
