"""What every request of a backend passes before it is sent: its rate limits and the budget.

A backend that sends requests (``openai_compatible``) asks its gate before each HTTP request,
retries and hedges included: ``enter`` waits for the rate limiter, then reserves the request's
estimated tokens and cost in the run's budget ledger (``BudgetExhausted``: not sent);
``leave`` settles both with the answer's ``usage`` (a failed request: no tokens, no cost, but
it was a request).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crucible_dagster.backends.rate_limit import RateLimiter
from crucible_dagster.backends.tokens import Tokenizer, completion_estimate, prompt_tokens
from crucible_dagster.budget import BudgetExhausted, Ledger, Reservation
from crucible_dagster.telemetry import record


@dataclass(frozen=True)
class Prices:
    """Per million tokens, in whatever currency the user prices in; None: not priced."""

    input: float | None
    output: float | None

    @property
    def priced(self) -> bool:
        return self.input is not None or self.output is not None

    def cost(self, prompt: int, completion: int) -> float:
        return (prompt * (self.input or 0.0) + completion * (self.output or 0.0)) / 1e6


@dataclass(frozen=True)
class Estimate:
    prompt: int
    completion: int
    cost: float

    @property
    def tokens(self) -> int:
        return self.prompt + self.completion


@dataclass
class RequestPlan:
    """A dry run's count for one backend: requests it would send and their estimates."""

    tokenizer: str
    priced: bool
    requests: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    completion_from: str = ""

    def add(self, estimate: Estimate) -> None:
        self.requests += 1
        self.prompt_tokens += estimate.prompt
        self.completion_tokens += estimate.completion
        self.cost += estimate.cost


@dataclass(frozen=True)
class Ticket:
    """One request let through: its estimate and its place in the budget."""

    estimate: Estimate
    reservation: Reservation | None


@dataclass
class RequestGate:
    limiter: RateLimiter
    tokenizer: Tokenizer
    model: str
    expected_completion: int | None
    max_tokens: int | None
    prices: Prices
    ledger: Ledger | None = None

    def estimate(self, body: dict[str, Any]) -> Estimate:
        prompt = prompt_tokens(body.get("messages"), self.tokenizer, self.model)
        completion = completion_estimate(self.expected_completion, self.max_tokens)
        return Estimate(prompt, completion, self.prices.cost(prompt, completion))

    def enter(self, body: dict[str, Any]) -> Ticket:
        """Wait for the rate, then take the budget's room: a request that may be sent."""
        estimate = self.estimate(body)
        self.limiter.acquire(estimate.tokens)
        try:
            reservation = (
                self.ledger.reserve(estimate.tokens, estimate.cost)
                if self.ledger is not None
                else None
            )
        except BudgetExhausted:
            record("budget_refused", error_kind="budget", prompt_tokens=estimate.prompt,
                   cost=estimate.cost, model=self.model[:512] if self.model else None)  # fmt: skip
            raise
        return Ticket(estimate, reservation)

    def leave(self, ticket: Ticket, usage: tuple[int | None, int | None] | None) -> None:
        """The request ended: with its answer's (prompt, completion) usage, None when it failed
        (a count the server left out is taken as estimated)."""
        if usage is None:
            prompt = completion = 0
        else:
            prompt = ticket.estimate.prompt if usage[0] is None else usage[0]
            completion = ticket.estimate.completion if usage[1] is None else usage[1]
            self.limiter.settle(ticket.estimate.tokens, prompt + completion)
        if self.ledger is not None and ticket.reservation is not None:
            cost = self.prices.cost(prompt, completion)
            self.ledger.settle(ticket.reservation, prompt + completion, cost)
