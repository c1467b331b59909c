"""The ``feedback`` stage: production feedback (``reliability.feedback``) ingested into the run.

Writes, in the run directory: ``feedback.parquet`` (the kept events, redacted when
``anonymize_pii``), ``feedback_errors.jsonl`` (every record refused, with its place, field, what
was expected and found), ``feedback.jsonl`` and ``preference_pairs.jsonl`` (the export for
fine-tuning). The metric ``feedback`` holds the counts (every record read lands in one), and
``feedback_quality`` the share of thumbs up, mean rating and correction rate per model version
and day, with intervals and each day against the one before.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from pydantic import Field

from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.stage import (
    Stage,
    StageError,
    StageOptions,
    reliability_setting,
    required_setting,
    setting_problems,
)

if TYPE_CHECKING:
    from pathlib import Path

    from crucible_dagster.experiment.ir import Experiment, Feedback

EXAMPLE = "{source: <file or table>}"
TABLE_FILE = "feedback.parquet"
ERRORS_FILE = "feedback_errors.jsonl"
EXPORT_FILE = "feedback.jsonl"
PAIRS_FILE = "preference_pairs.jsonl"


class FeedbackOptions(StageOptions):
    """The source and ingestion settings are the experiment's ``reliability.feedback``."""

    confidence_level: float = Field(default=0.95, gt=0, lt=1, description="Of every interval.")
    max_invalid_share: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Fail the stage when a larger share of the records read is invalid.",
    )
    export: bool = Field(default=True, description="Write feedback.jsonl and preference pairs.")
    day: date | None = Field(
        default=None,
        description="Keep only this day's events (UTC; the others counted other_day): the "
        "daily partitions of the feedback asset set it.",
    )


class FeedbackStage(Stage):
    name = "feedback"
    description = "Ingest production feedback: validate, redact, sample; quality and export"
    Options = FeedbackOptions
    uses = ("reliability.feedback",)

    @classmethod
    def check_experiment(cls, experiment: Experiment) -> list[tuple[str, str]]:
        settings = reliability_setting(experiment, "feedback")
        if settings is None:
            return setting_problems(experiment, "feedback", "feedback", EXAMPLE)
        return _source_problems(settings.source)

    def run(self, ctx: Context, options: FeedbackOptions) -> Context:
        from crucible_dagster.feedback.ingest import WeakKeyError, ingest
        from crucible_dagster.feedback.quality import quality_by_period
        from crucible_dagster.feedback.sources import FeedbackSourceError, read_records
        from crucible_dagster.runtime.run_dirs import report_base

        settings: Feedback = required_setting(ctx, "feedback", "feedback", EXAMPLE)
        if not settings.enabled:
            return ctx.put_metric("feedback", {"enabled": False})
        try:
            found = ingest(read_records(settings), settings, ctx.seed, day=options.day)
        except (FeedbackSourceError, WeakKeyError) as exc:
            raise StageError("feedback_source", None, str(exc)) from None
        folder = report_base(ctx)
        files = _write(folder, found.events, found.errors, options.export)
        summary: dict[str, Any] = {**found.summary(), "files": files}
        invalid = found.counts["invalid"] / found.counts["read"] if found.counts["read"] else 0.0
        if invalid > options.max_invalid_share:
            first = found.errors[0]
            raise StageError("feedback_invalid", summary, f"{found.counts['invalid']} of "
                             f"{found.counts['read']} feedback records are invalid, over "
                             f"max_invalid_share ({options.max_invalid_share}); the first: "
                             f"{first['where']}: {first['field']}: {first['problem']}")  # fmt: skip
        quality = quality_by_period(found.events, options.confidence_level, ctx.seed)
        ctx = ctx.put_metric("feedback", summary).put_metric("feedback_quality", quality)
        return ctx.put_artifact("feedback", str(folder / TABLE_FILE))


def _source_problems(source: Any) -> list[tuple[str, str]]:
    """A local path that names nothing, found before the run as a dataset's is (a URL or a
    table is looked at when the run reads it)."""
    from crucible_dagster.datasets.local import path_problems

    if not isinstance(source, str):
        return []
    return [("reliability.feedback.source", problem) for problem in path_problems(source)]


def _write(
    folder: Path, events: list[dict[str, Any]], errors: list[dict[str, str]], export: bool
) -> dict[str, str]:
    from crucible_dagster.feedback.export import preference_pairs, write_jsonl
    from crucible_dagster.feedback.table import write_events

    folder.mkdir(parents=True, exist_ok=True)
    written = {"events": write_events(folder / TABLE_FILE, events).name}
    written["errors"] = write_jsonl(folder / ERRORS_FILE, errors).name
    if export:
        written["export"] = write_jsonl(folder / EXPORT_FILE, events).name
        written["preference_pairs"] = write_jsonl(
            folder / PAIRS_FILE, preference_pairs(events)
        ).name
    return written
