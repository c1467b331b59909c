"""The backend contract: a model behind one call over a batch of samples.

A backend answers each ``Request`` (a sample id and its input: a feature row for a
predictor, a prompt for a generator) with a ``Response``: the output, its confidence where
the model gives one, the latency, and for language models the token counts and cost.
A failed sample is a ``Response`` with ``error`` set, never an exception for the batch, so
one bad sample does not lose the others and a fallback backend can take just the failures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from crucible_dagster.experiment.ir import CircuitBreaker, Hedging


@dataclass(frozen=True)
class Request:
    sample_id: str
    input: Any
    #: a prompt's chat messages (``predict.options.prompt``): a chat backend sends these, a
    #: backend that takes text gets ``input`` (the rendered user message)
    messages: list[dict[str, str]] | None = field(default=None, compare=False)


@dataclass
class Response:
    sample_id: str
    output: Any = None
    confidence: float | None = None
    latency_ms: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None
    cached: bool = False
    error: str | None = None
    #: which backend answered (the fallback's name when the primary failed this sample)
    backend: str = ""
    #: extra requests sent for this sample (hedges, retries)
    extra_requests: int = 0


class BackendOptions(BaseModel):
    """Options of a backend, from the IR's ``backend.options``; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")


@runtime_checkable
class Backend(Protocol):
    name: str

    def predict(self, requests: Sequence[Request]) -> list[Response]: ...


@runtime_checkable
class Hedgeable(Protocol):
    """A backend that can hedge its requests (``reliability.hedging``): a class or an instance
    passes ``issubclass``/``isinstance``, so validate can ask before building one."""

    def with_hedging(self, hedging: Hedging | None) -> Any: ...


@runtime_checkable
class Guarded(Protocol):
    """A backend that can stop sending while its service fails
    (``reliability.circuit_breaker``: ``backends.circuit``)."""

    def with_circuit_breaker(self, settings: CircuitBreaker | None) -> Any: ...


@runtime_checkable
class Budgeted(Protocol):
    """A backend whose requests count against the run's budget (``budget:``): it asks the
    ledger before each request it sends."""

    def with_budget(self, ledger: Any) -> Any: ...


@runtime_checkable
class Plannable(Protocol):
    """A backend that can say what a batch would send and cost without sending it (the dry
    run: ``crucible run --dry-run``, ``crucible plan --cost``)."""

    def plan(self, requests: Sequence[Request], planned: set[str]) -> Any: ...


@runtime_checkable
class CrossValidating(Protocol):
    """A backend that fits: each sample predicted by the model fitted on the other folds
    (the predict stage's ``cv_folds``)."""

    def out_of_fold(self, features: Any, target: Any, folds: int, seed: int) -> list[Response]: ...


class BackendError(ValueError):
    """A backend that cannot be built: the message names the IR field and what was expected."""


@dataclass
class FallbackBackend:
    """Asks ``primary`` first; samples it failed go to ``fallback`` (the IR's ``backend.fallback``)."""

    primary: Backend
    fallback: Backend
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = f"{self.primary.name}+fallback:{self.fallback.name}"

    def with_budget(self, ledger: Any) -> FallbackBackend:
        """The budget is the run's: the fallback's requests count against it too."""
        for backend in (self.primary, self.fallback):
            if isinstance(backend, Budgeted):
                backend.with_budget(ledger)
        return self

    def with_circuit_breaker(self, settings: CircuitBreaker | None) -> FallbackBackend:
        """Each backend that sends requests gets a breaker of its own: the primary's open
        circuit sends its samples to the fallback at once."""
        for backend in (self.primary, self.fallback):
            if isinstance(backend, Guarded):
                backend.with_circuit_breaker(settings)
        return self

    def predict(self, requests: Sequence[Request]) -> list[Response]:
        first = self.primary.predict(requests)
        failed = [r for r, answer in zip(requests, first, strict=True) if answer.error]
        if not failed:
            return first
        second = {a.sample_id: a for a in self.fallback.predict(failed)}
        merged = []
        for answer in first:
            retry = second.get(answer.sample_id) if answer.error else None
            if retry is not None:
                retry.latency_ms += answer.latency_ms  # the user waited for both
                retry.extra_requests += 1 + answer.extra_requests
            merged.append(retry or answer)
        return merged


class NoopBackend:
    """No model (the original's ``backend: {id: noop}``): every sample's output is None."""

    Options = BackendOptions

    def __init__(self, ref: Any, options: BackendOptions):
        self.name = "noop"

    def predict(self, requests: Sequence[Request]) -> list[Response]:
        return [Response(r.sample_id, backend=self.name) for r in requests]
