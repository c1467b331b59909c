"""Ensemble voting over members' answers to one sample, and how the execution mode asks them.

Voting (``reliability.ensemble.strategy``):

- ``majority``: the answer most members gave; a tie goes to the answer with the higher summed
  confidence, then to the earliest member's.
- ``weighted``: the answer with the largest summed weight (``weights``, one per member).
- ``best_confidence``: the answer of the most confident member.
- ``unanimous``: the answer when every member asked agrees; otherwise no answer (abstains).

Execution (``execution_mode``), over the members' measured latencies:

- ``parallel``: all members asked at once: latency is the slowest member's, cost the sum.
- ``sequential``: one after another: latency and cost are sums.
- ``hedged``: the first member is asked; the next is asked only if the first has not answered
  by ``timeout_ms`` (or the first failed); the first answer in wins, without a vote.
- ``cascade``: members asked in order until ``min_agreement`` (a share of all members) agree
  on one answer; the rest are never asked.

A member that answers after ``timeout_ms`` (parallel, sequential, cascade) does not vote.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from crucible_dagster.experiment.ir import Ensemble


@dataclass(frozen=True)
class Vote:
    member: str
    answer: Any
    confidence: float | None
    latency_ms: float
    cost: float = 0.0
    failed: bool = False


@dataclass
class Decision:
    answer: Any
    confidence: float | None
    latency_ms: float
    cost: float
    asked: list[str] = field(default_factory=list)
    counted: list[str] = field(default_factory=list)
    abstained: bool = False


class EnsembleConfigError(ValueError):
    pass


def check_config(config: Ensemble, members: Sequence[str] | None) -> None:
    """Refuse settings that cannot vote, naming the field (``members`` None: not known yet,
    as before a run with ``models`` unset)."""
    if config.strategy == "none":
        raise EnsembleConfigError(
            "reliability.ensemble.strategy: expected majority, weighted, best_confidence or "
            "unanimous for the ensemble stage, found 'none'"
        )
    if members is not None and len(members) < 2:
        raise EnsembleConfigError(
            f"reliability.ensemble.models: expected 2 or more members, found {list(members)}"
        )
    if config.strategy == "weighted" and members is not None:
        weights = config.weights or {}
        missing = [m for m in members if m not in weights]
        if missing:
            raise EnsembleConfigError(
                f"reliability.ensemble.weights: expected a weight for every member, missing {missing}"
            )
    if config.execution_mode == "cascade" and config.min_agreement is None:
        raise EnsembleConfigError(
            "reliability.ensemble.min_agreement: cascade needs it (a share, 0 to 1)"
        )
    if config.min_agreement is not None and not 0 < config.min_agreement <= 1:
        raise EnsembleConfigError(
            f"reliability.ensemble.min_agreement: expected a share in (0, 1], found {config.min_agreement}"
        )


def vote(
    votes: Sequence[Vote], strategy: str, weights: Mapping[str, float] | None = None
) -> tuple[Any, float | None, bool]:
    """(answer, confidence, abstained) from the votes that count."""
    valid = [v for v in votes if not v.failed]
    if not valid:
        return None, None, True
    if strategy == "best_confidence":
        rated = [v for v in valid if v.confidence is not None]
        if not rated:
            return valid[0].answer, None, False
        best = max(rated, key=lambda v: v.confidence or 0.0)  # max keeps the first of equals
        return best.answer, best.confidence, False
    tally: dict[Any, list[float]] = {}
    for position, v in enumerate(valid):
        weight = (weights or {}).get(v.member, 1.0) if strategy == "weighted" else 1.0
        entry = tally.setdefault(_key(v.answer), [0.0, 0.0, -position])
        entry[0] += weight
        entry[1] += v.confidence or 0.0
    answers = {_key(v.answer): v.answer for v in valid}
    winner = max(tally, key=lambda k: (tally[k][0], tally[k][1], tally[k][2]))
    total = sum(t[0] for t in tally.values())
    share = tally[winner][0] / total if total else None
    if strategy == "unanimous" and len(tally) > 1:
        return None, share, True
    return answers[winner], share, False


def _key(answer: Any) -> Any:
    return answer if isinstance(answer, int | float | str | bool | None) else repr(answer)


def decide(votes: Sequence[Vote], config: Ensemble) -> Decision:
    """One sample's ensemble answer under the configured execution mode."""
    timeout = config.timeout_ms
    mode = config.execution_mode
    if mode == "hedged":
        return _hedged(votes, timeout)
    if mode == "cascade":
        return _cascade(votes, config)
    on_time = [v for v in votes if timeout is None or v.latency_ms <= timeout]
    answer, confidence, abstained = vote(on_time, config.strategy, config.weights)
    latencies = [min(v.latency_ms, timeout) if timeout is not None else v.latency_ms for v in votes]
    latency = max(latencies) if mode == "parallel" else sum(latencies)
    return Decision(
        answer, confidence, latency, sum(v.cost for v in votes),
        [v.member for v in votes], [v.member for v in on_time], abstained,
    )  # fmt: skip


def _hedged(votes: Sequence[Vote], delay: float | None) -> Decision:
    """Member k+1 is sent ``delay`` ms after member k unless an answer is in by then (without a
    delay, only when member k failed); the earliest answer wins."""
    sent: list[tuple[float, Vote]] = []
    start = 0.0
    for v in votes:
        sent.append((start, v))
        next_start = start + (delay if delay is not None else v.latency_ms)
        answered = [s + x.latency_ms for s, x in sent if not x.failed]
        if answered and min(answered) <= next_start:
            break
        start = next_start
    asked = [x.member for _, x in sent]
    cost = sum(x.cost for _, x in sent)
    ok = [(s + x.latency_ms, x) for s, x in sent if not x.failed]
    if not ok:
        return Decision(None, None, max(s + x.latency_ms for s, x in sent), cost, asked, [], True)
    at, first = min(ok, key=lambda pair: pair[0])
    return Decision(first.answer, first.confidence, at, cost, asked, [first.member])


def _cascade(votes: Sequence[Vote], config: Ensemble) -> Decision:
    needed = (config.min_agreement or 1.0) * len(votes)
    timeout = config.timeout_ms
    asked: list[Vote] = []
    counted: list[Vote] = []
    for v in votes:
        asked.append(v)
        if not v.failed and (timeout is None or v.latency_ms <= timeout):
            counted.append(v)
        counts: dict[Any, int] = {}
        for c in counted:
            counts[_key(c.answer)] = counts.get(_key(c.answer), 0) + 1
        if counts and max(counts.values()) >= needed - 1e-9:
            break
    answer, confidence, abstained = vote(counted, config.strategy, config.weights)
    latency = sum(
        min(v.latency_ms, timeout) if timeout is not None else v.latency_ms for v in asked
    )
    return Decision(
        answer, confidence, latency, sum(v.cost for v in asked),
        [v.member for v in asked], [v.member for v in counted], abstained,
    )  # fmt: skip


# --- live: the members are called now, as the execution mode says -----------------------------

Ask = Callable[[], Vote]


def decide_live(members: Sequence[tuple[str, Ask]], config: Ensemble, pool: Executor) -> Decision:
    """One sample's answer from members called now: ``parallel`` calls all at once and waits up
    to ``timeout_ms``; ``sequential`` one by one (each up to ``timeout_ms``); ``cascade`` one by
    one until ``min_agreement`` agree (the rest are never called); ``hedged`` calls the next
    member each ``timeout_ms`` until one answers. A call past its time does not vote (it runs
    on, unwaited for: an HTTP request cannot be taken back)."""
    timeout = config.timeout_ms / 1000 if config.timeout_ms is not None else None
    began = time.perf_counter()
    if config.execution_mode == "parallel":
        futures = [pool.submit(ask) for _, ask in members]
        done, _ = wait(futures, timeout=timeout)
        votes = [f.result() for f in futures if f in done and f.exception() is None]
        asked = [name for name, _ in members]
    elif config.execution_mode == "hedged":
        return _hedged_live(members, timeout, pool, began)
    else:
        needed = (config.min_agreement or 1.0) * len(members)
        votes, asked = [], []
        for name, ask in members:
            asked.append(name)
            future = pool.submit(ask)
            try:
                votes.append(future.result(timeout=timeout))
            except (TimeoutError, FutureTimeout):
                continue
            if config.execution_mode == "cascade" and _agreeing(votes) >= needed - 1e-9:
                break
    answer, confidence, abstained = vote(votes, config.strategy, config.weights)
    latency = (time.perf_counter() - began) * 1000
    counted = [v.member for v in votes if not v.failed]
    return Decision(
        answer, confidence, latency, sum(v.cost for v in votes), asked, counted, abstained
    )


def _agreeing(votes: Sequence[Vote]) -> int:
    counts: dict[Any, int] = {}
    for v in votes:
        if not v.failed:
            counts[_key(v.answer)] = counts.get(_key(v.answer), 0) + 1
    return max(counts.values(), default=0)


def _hedged_live(
    members: Sequence[tuple[str, Ask]], delay: float | None, pool: Executor, began: float
) -> Decision:
    pending: dict[Future[Vote], str] = {}
    asked: list[str] = []
    remaining = list(members)
    finished: list[Vote] = []
    while remaining or pending:
        if remaining and (not pending or delay is not None):
            name, ask = remaining.pop(0)
            asked.append(name)
            pending[pool.submit(ask)] = name
        done, _ = wait(
            list(pending), timeout=delay if remaining else None, return_when=FIRST_COMPLETED
        )
        for future in done:
            pending.pop(future)
            if future.exception() is None:
                result = future.result()
                finished.append(result)
                if not result.failed:
                    latency = (time.perf_counter() - began) * 1000
                    cost = sum(v.cost for v in finished)
                    return Decision(
                        result.answer, result.confidence, latency, cost, asked, [result.member]
                    )
    latency = (time.perf_counter() - began) * 1000
    return Decision(None, None, latency, sum(v.cost for v in finished), asked, [], True)
