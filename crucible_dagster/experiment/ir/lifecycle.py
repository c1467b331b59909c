"""The model lifecycle: what to train (``training_config``), where runs and models are recorded
(``tracking``), which registered version a file means (``model_version``, a ``baseline`` with
``id``), and which alias a promotion moves (``deployment``).

The records keep the original's field names and defaults; a setting nothing here can act on
(a GPU ``device``, ``mixed_precision``, ``gradient_clipping``, serving's replicas) is refused
with the reason by ``experiment.unused`` rather than accepted and ignored.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from crucible_dagster.experiment.ir.base import Float, Int, IRModel, Name, Seed
from crucible_dagster.experiment.ir.refs import DatasetRef

#: a registered model's name and an alias: MLflow allows '/' and spaces in names, which would
#: become folders of a file store and parts of URLs; here a name is one plain path segment
REGISTRY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
#: what training may report per epoch, on the validation split (and on the test split at the end)
TrainingMetric = Literal["loss", "accuracy", "f1", "mse", "mae", "r2"]
#: metrics where lower is better (early stopping's default mode)
DEFAULT_METRICS: tuple[TrainingMetric, ...] = ("loss", "accuracy")
LOWER_IS_BETTER = frozenset({"loss", "mse", "mae"})


#: an alias as MLflow takes it (letters, digits, '_' and '-'), but the ones it reserves:
#: ``latest`` (the newest version) and ``v<N>`` (version N) would let a version pass as its own
#: champion
ALIAS = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
RESERVED_ALIAS = re.compile(r"^(latest|v\d+)$", re.IGNORECASE)


def alias_name(value: str) -> str:
    if not ALIAS.fullmatch(value):
        raise ValueError(f"expected a registry alias of letters, digits, '_' and '-' (MLflow's), "
                         f"got {value[:80]!r}")  # fmt: skip
    if RESERVED_ALIAS.fullmatch(value):
        raise ValueError(f"expected an alias of your own, got {value!r}, which MLflow reserves "
                         "('latest' is the newest version, 'v<N>' version N)")  # fmt: skip
    return value


def registry_name(value: str, what: str) -> str:
    if not REGISTRY_NAME.fullmatch(value) or ".." in value:
        raise ValueError(
            f"expected a {what} of letters, digits, '_', '.' and '-' (at most 128, starting "
            f"with a letter or digit, no '..'), got {value[:80]!r}"
        )
    return value


class ModelRef(IRModel):
    """A model: for training, ``architecture`` names the scikit-learn estimator (a class name
    such as ``SGDClassifier`` or ``package.module:Class``) and ``options`` its parameters; as a
    ``baseline``, ``id`` (or ``name``) and ``version`` name a registered version."""

    id: Name
    name: str | None = Field(default=None, description="The registered model's name (default: id).")
    version: str | None = None
    artifact_uri: str | None = None
    architecture: str | None = None
    task: Literal["classification", "regression"] | None = None
    metadata: dict[str, Any] | None = None
    provider: str = "local"
    framework: str = "nx"
    options: dict[str, Any] | None = None

    @property
    def registered_name(self) -> str:
        return self.name or self.id


class ModelVersion(IRModel):
    """A registered version: ``model_id`` is the registered model, ``version`` its number
    (MLflow numbers versions 1, 2, 3; the original's ``x.y.z`` is kept in tags)."""

    id: Name
    model_id: Name
    version: Annotated[
        str, Field(pattern=r"^\d{1,9}$", description="An MLflow version number (1, 2, 3).")
    ]
    training_run_id: str | None = None
    metrics: dict[str, Any] | None = None
    artifact_uri: str | None = None
    parent_version: str | None = None
    description: str | None = None
    created_at: datetime | None = None
    created_by: str | None = None
    stage: Literal["development", "staging", "production", "archived"] = "development"
    options: dict[str, Any] | None = None


class EarlyStopping(IRModel):
    """Stop when ``metric`` on the validation split has not improved by ``min_delta`` for
    ``patience`` epochs; the model kept is the best epoch's."""

    metric: TrainingMetric = "loss"
    patience: Int = Field(default=3, ge=1)
    mode: Literal["min", "max"] | None = Field(
        default=None, description="min for loss, mse and mae; max otherwise (the default)."
    )
    min_delta: Float = Field(default=0.0, ge=0)

    @property
    def lower_is_better(self) -> bool:
        return self.mode == "min" if self.mode else self.metric in LOWER_IS_BETTER


class TrainingConfig(IRModel):
    """What the ``train`` stage fits: ``model_ref``'s estimator on ``dataset_ref``."""

    id: Name
    model_ref: ModelRef
    dataset_ref: DatasetRef
    validation_split: Float | None = Field(default=None, gt=0, lt=1)
    test_split: Float = Field(
        default=0.25,
        gt=0,
        lt=1,
        description="The held-out share each sample of which is scored at the end: the "
        "evaluation a promotion gate compares on (seeded, the same rows for the same data).",
    )
    seed: Seed | None = None
    gradient_clipping: Float | None = None
    early_stopping: EarlyStopping | None = None
    checkpoint_every: Int | None = Field(default=None, ge=1)
    epochs: Int = Field(default=1, gt=0, le=100_000)
    batch_size: Int = Field(default=32, gt=0)
    learning_rate: Float = Field(default=0.001, gt=0)
    optimizer: Literal["adam", "sgd", "adamw", "rmsprop"] = "adam"
    loss_function: Literal["cross_entropy", "mse", "mae", "bce"] = "cross_entropy"
    metrics: list[TrainingMetric] = Field(default_factory=lambda: list(DEFAULT_METRICS))
    device: Literal["cpu", "cuda", "mps", "tpu"] = "cpu"
    mixed_precision: bool = False
    options: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _stopping_needs_validation(self) -> TrainingConfig:
        if self.early_stopping is not None and self.validation_split is None:
            raise ValueError(
                "early_stopping watches the validation split: set validation_split (e.g. 0.2)"
            )
        return self


class MlflowTracking(IRModel):
    uri: str | None = Field(
        default=None,
        description="Any MLflow tracking URI (http://host:5000, sqlite:///path.db); default a "
        "SQLite store under the artifacts root (mlflow/mlflow.db).",
    )
    experiment_name: str | None = Field(
        default=None, description="The MLflow experiment (default crucible/<experiment id>)."
    )
    timeout_s: Float = Field(
        default=10.0, gt=0, le=600, description="How long one request to a server may take."
    )

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("expected a tracking URI, got an empty string")
        if value is not None and _has_secret(value):  # the value is not echoed
            raise ValueError(
                "expected a tracking URI without a password or token (it would be copied into "
                "every run's manifest): give them in MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN"
            )
        return value


SECRET_KEYS = re.compile(r"pass|token|secret|key|auth|sig|credential", re.IGNORECASE)


def _has_secret(uri: str) -> bool:
    """A password in the URI's user part, or a query parameter named like a secret."""
    from urllib.parse import parse_qsl, urlsplit

    try:
        parts = urlsplit(uri)
        password = parts.password
    except ValueError:
        return "@" in uri
    query = parse_qsl(parts.query, keep_blank_values=True)
    return bool(password) or any(SECRET_KEYS.search(k) for k, _ in query)


class Tracking(IRModel):
    """Where each run is logged (parameters, metrics per epoch, reports, manifest) and where
    trained models are registered."""

    mlflow: MlflowTracking = Field(default_factory=MlflowTracking)


class DeploymentConfig(IRModel):
    """Which registry alias a promotion moves, and when. Serving itself (target, replicas,
    resources, scaling, health checks, endpoints) is out of scope and refused when set."""

    id: str | None = None
    model_version_id: str | None = None
    environment: Literal["development", "staging", "production"] = "production"
    strategy: Literal["rolling", "blue_green", "canary", "recreate"] = "rolling"
    alias: str = Field(
        default="champion",
        description="The alias moved in production; in staging or development "
        "'<alias>-<environment>'; a canary moves '<alias>-canary'.",
    )
    target: dict[str, Any] | None = None
    resources: dict[str, Any] | None = None
    scaling: dict[str, Any] | None = None
    health_check: dict[str, Any] | None = None
    endpoint: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    replicas: Int = Field(default=1, gt=0)
    options: dict[str, Any] | None = None

    @field_validator("alias")
    @classmethod
    def _alias(cls, value: str) -> str:
        return alias_name(value)

    @property
    def moved_alias(self) -> str:
        """The alias a passing gate moves: the champion's in production, a canary's or an
        environment's own otherwise."""
        if self.strategy == "canary":
            return f"{self.alias}-canary"
        return (
            self.alias if self.environment == "production" else f"{self.alias}-{self.environment}"
        )
