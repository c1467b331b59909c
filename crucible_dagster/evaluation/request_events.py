"""One ``request`` telemetry event per answer a predict stage got: latency, tokens, cost,
success, the kind of error (never its text, which may quote the prompt), cache hits and the
extra requests (retries, hedges) it took."""

from __future__ import annotations

from collections.abc import Sequence

from crucible_dagster.backends.base import Response
from crucible_dagster.experiment.ir import BackendRef
from crucible_dagster.telemetry import record
from crucible_dagster.telemetry.kinds import error_kind


def record_requests(variant: str, ref: BackendRef, responses: Sequence[Response]) -> None:
    """The answers of one variant, each as a ``request`` event of the running stage."""
    model = (ref.options or {}).get("model")
    for answer in responses:
        if not record(
            "request",
            variant=variant,
            sample_id=str(answer.sample_id)[:512],
            model=str(model)[:512] if model is not None else None,
            provider=ref.id,
            latency_ms=max(0.0, float(answer.latency_ms)),
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            cost=answer.cost,
            success=answer.error is None,
            error_kind=error_kind(answer.error),
            cached=answer.cached,
            extra_requests=answer.extra_requests,
            sampling_rate=1.0,
        ):
            return  # no run is recording
