"""``reliability.feedback``: where production feedback comes from and how it is ingested (the
original's ``Feedback.Config``), and one feedback record (``Feedback.Event``)."""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from crucible_dagster.common.locations import is_url
from crucible_dagster.experiment.ir.base import Float, Int, IRModel, distinct

FeedbackType = Literal["thumbs", "rating", "correction", "label", "flag"]
#: a PostgreSQL table, optionally schema-qualified: never spliced into SQL unquoted
TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?")
#: fsspec schemes a feedback path may use: files and object stores, never a web address (an
#: experiment file must not make the run fetch from an arbitrary host, such as a cloud
#: metadata endpoint on 169.254.169.254)
SOURCE_SCHEMES = ("file", "memory", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl")


class PostgresSource(IRModel):
    """Feedback events as the rows of a PostgreSQL table, one column per event field."""

    table: str = Field(description="The table, optionally schema-qualified (schema.table).")
    dsn: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        description="A postgresql:// connection URL (or $CRUCIBLE_FEEDBACK_DSN when unset).",
    )
    timeout_s: Float = Field(
        default=300.0, gt=0, le=86_400, description="A deadline for each query (the server's)."
    )

    @field_validator("table")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not TABLE_NAME.fullmatch(value):
            raise ValueError(
                "expected a table name (letters, digits and '_', optionally schema.table), "
                f"found {value[:80]!r}"
            )
        return value

    @field_validator("dsn")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        """A URL without a secret: the experiment file is copied into every run's manifest."""
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("expected a postgresql:// URL (the value is not shown: it may hold "
                             "a password)")  # fmt: skip
        parsed = urlsplit(value)
        if parsed.password is not None or "password" in parse_qs(parsed.query):
            raise ValueError(
                "expected a URL without a password (it would be copied into every run's "
                "manifest): give it in $CRUCIBLE_FEEDBACK_DSN, $PGPASSWORD or ~/.pgpass"
            )
        return value


def _source_kind(value: Any) -> str:
    """A mapping (or the model) is a table; anything else is judged as a path."""
    return "table" if isinstance(value, dict | BaseModel) else "path"


Source = Annotated[
    Annotated[str, Tag("path")] | Annotated[PostgresSource, Tag("table")],
    Discriminator(_source_kind),
]


class Feedback(IRModel):
    """``reliability.feedback``: the ``feedback`` stage ingests these events (``feedback``)."""

    source: Source = Field(
        description="A JSONL or Parquet file, folder or glob (a path or an fsspec URL of a file "
        "or object store), or {table, dsn} of PostgreSQL."
    )
    enabled: bool = True
    sampling_rate: Float = Field(
        default=1.0, description="The share of events kept, chosen by event id (0 to 1)."
    )
    feedback_types: Annotated[list[FeedbackType], distinct("kinds")] = Field(
        default_factory=lambda: list[FeedbackType](["thumbs", "rating", "correction"]),
        min_length=1,
        description="The kinds of event ingested; others are counted, not kept.",
    )
    anonymize_pii: bool = Field(
        default=True,
        description="Redact emails, phone and card numbers, keys in text; hash user and session ids.",
    )
    retention_days: Int | None = Field(
        default=None, ge=1, le=36_500, description="Drop events older than this many days."
    )
    daily_from: date | None = Field(
        default=None,
        description="Under Dagster, the first day of the asset crucible/<id>/feedback, "
        "partitioned by day; unset: no such asset.",
    )
    storage: Literal["local"] = Field(
        default="local", description="Where events are kept: Parquet in the run directory."
    )
    max_line_bytes: Int = Field(
        default=1_048_576, ge=64, le=2**30, description="A longer JSONL line is a bad record."
    )
    max_depth: Int = Field(default=32, ge=2, le=1000, description="JSON nested deeper is bad.")
    max_bytes: Int = Field(
        default=2**30, ge=1, description="Refuse a source of more bytes than this (all files)."
    )
    max_records: Int = Field(
        default=1_000_000,
        ge=1,
        description="Refuse a source of more records than this (a small Parquet file can hold "
        "millions of rows).",
    )

    @field_validator("sampling_rate")
    @classmethod
    def _share(cls, value: float) -> float:
        if not 0 <= value <= 1:
            raise ValueError("sampling_rate must be between 0 and 1")
        return value

    @field_validator("source")
    @classmethod
    def _allowed_source(cls, value: str | PostgresSource) -> str | PostgresSource:
        if isinstance(value, str) and not value.strip():
            raise ValueError(f"expected a path or URL of feedback events, found {value!r}")
        if not isinstance(value, str) or not is_url(value):
            return value
        url = urlsplit(value)
        if url.scheme not in SOURCE_SCHEMES:
            raise ValueError(
                f"expected a path or a URL of {', '.join(SOURCE_SCHEMES)}, found the "
                f"{value.split(':', 1)[0]!r} URL {value[:120]!r}; put the file where the run "
                "can read it, or use {table, dsn} for PostgreSQL"
            )
        if url.scheme == "file" and url.hostname not in (None, "", "localhost"):
            raise ValueError(
                f"expected a file:// URL of this machine (no host, or localhost), found the "
                f"host {url.hostname!r}"
            )
        return value


class FeedbackEvent(BaseModel):
    """One piece of production feedback (the original's ``Feedback.Event``). Its
    ``feedback_value`` depends on its type: thumbs a bool (or "up"/"down"), rating a finite
    number, correction the corrected output (text), label text, flag a bool or text.

    Data, not a setting: a plain model (unknown keys refused, ``Float`` refusing ``true``)
    without the settings' model-wide number checks, which tripled the cost of a record."""

    model_config = ConfigDict(extra="forbid")

    id: str
    feedback_type: FeedbackType = "thumbs"
    feedback_value: Any = None
    deployment_id: str | None = None
    model_version: str | None = None
    input: Any = None
    output: Any = None
    user_id: str | None = None
    session_id: str | None = None
    latency_ms: Float | None = Field(default=None, ge=0)
    metadata: dict[str, Any] = Field(default_factory=dict)
    timestamp: datetime | None = None

    @field_validator("metadata", mode="before")
    @classmethod
    def _none_metadata(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        """A table's integer key (``bigserial``) is an id as good as text; a blank one is
        refused."""
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and not value.strip():
            raise ValueError(f"expected a non-blank id, found {value!r}")
        return value

    @field_validator("user_id", "session_id", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _value_fits_type(self) -> FeedbackEvent:
        value, kind = self.feedback_value, self.feedback_type
        if kind == "thumbs":
            if isinstance(value, str) and value.lower() in THUMBS:
                object.__setattr__(self, "feedback_value", THUMBS[value.lower()])
            elif not isinstance(value, bool):
                raise ValueError(_expected("true/false or 'up'/'down'", kind, value))
        elif kind == "rating":
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not _finite(value):
                raise ValueError(_expected("a finite number", kind, value))
        elif kind in ("correction", "label"):
            if not isinstance(value, str) or not value:
                raise ValueError(_expected("non-empty text", kind, value))
        elif not isinstance(value, bool | str):
            raise ValueError(_expected("true/false or text", kind, value))
        return self


def _finite(value: float) -> bool:
    """A finite float: an integer of 400 digits is not one (float() overflows)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


THUMBS = {"up": True, "down": False, "thumbs_up": True, "thumbs_down": False}


def _expected(what: str, kind: str, value: Any) -> str:
    found = "nothing" if value is None else f"{type(value).__name__} {str(value)[:60]!r}"
    return f"feedback_value: expected {what} for a {kind} event, found {found}"
