"""The original's ``Training.Run``, written as ``training_run.json`` in the run directory after
every epoch: status, current epoch, the metric history, the best epoch's metrics and the
checkpoints (each with its sha256, checked before a resume loads it).

It is read back from another run's directory when a run resumes: a record that is not JSON,
not this shape, or of another experiment is a located error, never half-used.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crucible_dagster.runtime.stage import StageError

RECORD = "training_run.json"
#: a record larger than this is not one this package wrote (100 000 epochs of six metrics fit)
MAX_RECORD_BYTES = 64 * 1024 * 1024
Status = Literal["pending", "running", "completed", "stopped_early", "failed", "cancelled"]


class Checkpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epoch: int = Field(ge=1)
    path: str  #: relative to the run directory
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    best_path: str | None = None  #: the best epoch's model so far, beside it
    best_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class EpochMetrics(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epoch: int = Field(ge=1)
    split: Literal["validation", "train"]
    metrics: dict[str, float | None]


class TrainingRun(BaseModel):
    """One training run: what the ``train`` stage did, epoch by epoch."""

    model_config = ConfigDict(extra="forbid")
    id: str
    config: dict[str, Any]
    experiment_id: str
    run_id: str
    status: Status = "pending"
    current_epoch: int = Field(default=0, ge=0)
    metrics_history: list[EpochMetrics] = Field(default_factory=list)
    best_epoch: int | None = None
    best_metrics: dict[str, float | None] | None = None
    checkpoint_uris: list[Checkpoint] = Field(default_factory=list)
    resumed_from: dict[str, Any] | None = None
    final_model_version: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error_message: str | None = None
    estimator: str | None = None
    seed: int | None = None
    applied: dict[str, str] = Field(default_factory=dict)

    def write(self, run_dir: Path) -> Path:
        """Replaces the record atomically (a killed run leaves the last whole one)."""
        path = run_dir / RECORD
        partial = path.with_name(f".{RECORD}.partial")
        partial.write_text(self.model_dump_json(indent=2), encoding="utf-8")
        partial.replace(path)
        return path


def read_training_run(run_dir: Path, experiment_id: str) -> TrainingRun:
    """The record a resume starts from; StageError naming the file and what is wrong."""
    from crucible_dagster.run_history.records import RecordError, read_bytes

    path = run_dir / RECORD
    where = str(path)
    try:
        data = read_bytes(path, MAX_RECORD_BYTES, "training record")
    except (RecordError, OSError) as exc:
        raise StageError(
            "unreadable_training_run", where, f"{where}: cannot resume: {exc}"
        ) from None
    try:
        found = TrainingRun.model_validate(json.loads(data))
    except (ValueError, ValidationError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else None
        field = ".".join(str(p) for p in first["loc"]) if first else "(the file)"
        why = first["msg"] if first else str(exc)[:200]
        raise StageError("invalid_training_run", where,
                         f"{where}: {field}: cannot resume from it: {why}") from None  # fmt: skip
    if found.experiment_id != experiment_id:
        raise StageError("foreign_training_run", where, f"{where}: experiment_id: expected "
                         f"{experiment_id!r}, found {found.experiment_id[:80]!r}")  # fmt: skip
    return found
