"""The original's model lifecycle records, kept so files written for the original still load."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from crucible_dagster.experiment.ir.base import Float, Int, IRModel, Name
from crucible_dagster.experiment.ir.refs import DatasetRef


class ModelRef(IRModel):
    id: Name
    name: str | None = None
    version: str | None = None
    artifact_uri: str | None = None
    architecture: str | None = None
    task: str | None = None
    metadata: dict[str, Any] | None = None
    provider: str = "local"
    framework: str = "nx"
    options: dict[str, Any] | None = None


class ModelVersion(IRModel):
    id: Name
    model_id: Name
    version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+")]
    training_run_id: str | None = None
    metrics: dict[str, Any] | None = None
    artifact_uri: str | None = None
    parent_version: str | None = None
    description: str | None = None
    created_at: datetime | None = None
    created_by: str | None = None
    stage: Literal["development", "staging", "production", "archived"] = "development"
    options: dict[str, Any] | None = None


class TrainingConfig(IRModel):
    id: Name
    model_ref: ModelRef
    dataset_ref: DatasetRef
    validation_split: Float | None = None
    seed: Int | None = None
    gradient_clipping: Float | None = None
    early_stopping: dict[str, Any] | None = None
    checkpoint_every: Int | None = None
    epochs: Int = Field(default=1, gt=0)
    batch_size: Int = Field(default=32, gt=0)
    learning_rate: Float = Field(default=0.001, gt=0)
    optimizer: Literal["adam", "sgd", "adamw", "rmsprop"] = "adam"
    loss_function: Literal["cross_entropy", "mse", "mae", "bce"] = "cross_entropy"
    metrics: list[str] = Field(default_factory=lambda: ["loss", "accuracy"])
    device: Literal["cpu", "cuda", "mps", "tpu"] = "cpu"
    mixed_precision: bool = False
    options: dict[str, Any] | None = None
