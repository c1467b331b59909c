"""One ``request`` telemetry event per answer a predict stage got: latency, tokens, cost,
success, the kind of error (never its text, which may quote the prompt), cache hits and the
extra requests (retries, hedges) it took."""

from __future__ import annotations

import re
from collections.abc import Sequence

from crucible_dagster.backends.base import Response
from crucible_dagster.experiment.ir import BackendRef
from crucible_dagster.telemetry import record

_STATUS = re.compile(r"\b(?:HTTP|status)\s*([1-5]\d\d)\b", re.IGNORECASE)


def error_kind(error: str | None) -> str | None:
    """A short, text-free kind of a failed answer: ``http_503``, ``timeout``, ``budget`` ..."""
    if error is None:
        return None
    lowered = error.lower()
    status = _STATUS.search(error)
    if status:
        return f"http_{status.group(1)}"
    for kind in ("timeout", "budget", "rate_limit", "refused", "invalid"):
        if kind.replace("_", " ") in lowered or kind in lowered:
            return kind
    if "timed out" in lowered:
        return "timeout"
    return "error"


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
