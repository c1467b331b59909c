"""``telemetry:``: which request events a run keeps, and whether they may hold text."""

from __future__ import annotations

from pydantic import Field, StrictBool

from crucible_dagster.experiment.ir.base import Float, IRModel


class TelemetrySettings(IRModel):
    """Request events are many: keep a share of them (seeded, so a rerun keeps the same ones),
    and never their text unless asked (then PII-redacted)."""

    sampling_rate: Float = Field(
        default=1.0,
        gt=0.0,
        le=1.0,
        description="The share of request events kept (0 < rate <= 1; lifecycle events are "
        "always kept); metrics count each kept one as 1 / rate requests.",
    )
    capture_text: StrictBool = Field(
        default=False,
        description="Keep each request's prompt and answer text in its event, PII redacted "
        "(emails, phone and card numbers...), cut at 2000 characters.",
    )
