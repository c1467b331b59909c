"""One ``request`` telemetry event per answer a predict stage got: latency, tokens, cost,
success, the kind of error (never its text, which may quote the prompt), cache hits and the
extra requests (retries, hedges) it took; a seeded share of them (``telemetry.sampling_rate``),
and their text only when ``telemetry.capture_text`` asks (PII redacted)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from crucible_dagster.backends.base import Request, Response
from crucible_dagster.common.pii import redact
from crucible_dagster.experiment.ir import BackendRef, TelemetrySettings
from crucible_dagster.telemetry import record
from crucible_dagster.telemetry.kinds import error_kind

#: the most text a captured prompt or answer keeps (``telemetry.capture_text``)
MAX_TEXT = 2000


def kept(rate: float, seed: int, variant: str, sample_id: str) -> bool:
    """Whether a request's event is kept at ``rate``: decided by the seed, the variant and the
    sample, so a rerun keeps the same events and two variants keep the same samples."""
    if rate >= 1.0:
        return True
    digest = hashlib.sha256(f"{seed}\x00{variant}\x00{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return redact(text[: 4 * MAX_TEXT])[:MAX_TEXT]  # redacted whole, then cut


def record_requests(
    variant: str,
    ref: BackendRef,
    requests: Sequence[Request],
    responses: Sequence[Response],
    settings: TelemetrySettings | None = None,
    seed: int = 0,
) -> None:
    """The answers of one variant, each as a ``request`` event of the running stage: a share
    of them at ``settings.sampling_rate``, with their text (PII redacted) when
    ``settings.capture_text`` asks for it."""
    settings = settings or TelemetrySettings()
    model = (ref.options or {}).get("model")
    for request, answer in zip(requests, responses, strict=True):
        sample_id = str(answer.sample_id)[:512]
        if not kept(settings.sampling_rate, seed, variant, sample_id):
            continue
        text = (
            {
                "input_text": _text(request.messages or request.input),
                "output_text": _text(answer.output),
            }
            if settings.capture_text
            else {}
        )
        if not record(
            "request",
            variant=variant,
            sample_id=sample_id,
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
            sampling_rate=settings.sampling_rate,
            **text,
        ):
            return  # no run is recording
