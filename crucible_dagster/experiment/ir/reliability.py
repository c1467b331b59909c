"""``reliability:``: ensemble, hedging, circuit breaker, statistics, fairness and guardrail
settings."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from crucible_dagster.experiment.ir.base import Float, Int, IRModel, Name, distinct
from crucible_dagster.experiment.ir.feedback_settings import Feedback
from crucible_dagster.experiment.ir.lifecycle import ModelRef
from crucible_dagster.experiment.ir.refs import DatasetRef

# --- reliability --------------------------------------------------------------------------

TestName = Literal[
    "ttest",
    "paired_ttest",
    "mann_whitney",
    "wilcoxon",
    "anova",
    "welch_anova",
    "kruskal_wallis",
    "friedman",
    "mcnemar",
    "bootstrap",
    "cv_5x2",
    "corrected_resampled_ttest",
]
LEGACY_TEST_NAMES = {"mannwhitney": "mann_whitney", "kruskal": "kruskal_wallis", "t_test": "ttest"}
CorrectionName = Literal[
    "none", "bonferroni", "holm", "hochberg", "benjamini_hochberg", "benjamini_yekutieli"
]
LEGACY_CORRECTIONS = {
    "fdr": "benjamini_hochberg",
    "bh": "benjamini_hochberg",
    "by": "benjamini_yekutieli",
}


def normalize_test_name(name: Any) -> Any:
    return LEGACY_TEST_NAMES.get(name, name) if isinstance(name, str) else name


def normalize_correction(name: Any) -> Any:
    return LEGACY_CORRECTIONS.get(name, name) if isinstance(name, str) else name


def _normalize_test_names(value: Any) -> Any:
    return [normalize_test_name(v) for v in value] if isinstance(value, list) else value


#: Test and correction names that also accept the original's spellings (mannwhitney, kruskal, fdr).
TestNames = Annotated[list[TestName], BeforeValidator(_normalize_test_names)]
Correction = Annotated[CorrectionName, BeforeValidator(normalize_correction)]


class Ensemble(IRModel):
    strategy: Literal["none", "majority", "weighted", "best_confidence", "unanimous"] = "none"
    execution_mode: Literal["parallel", "sequential", "hedged", "cascade"] = "parallel"
    models: list[str] | None = None
    weights: dict[str, Float] | None = None
    min_agreement: Float | None = None
    timeout_ms: Int | None = None
    options: dict[str, Any] | None = None


class HedgingOptions(IRModel):
    """``reliability.hedging.options``: the two knobs the strategies read beyond the fields."""

    min_samples: Int = Field(
        default=20,
        ge=1,
        le=100_000,
        description="Completed requests before 'percentile' and 'workload_aware' hedge at all.",
    )
    capacity: Float = Field(
        default=8.0,
        gt=0,
        description="'workload_aware': the in-flight requests that double the hedge delay.",
    )


def _yaml11_off(value: Any) -> Any:
    """YAML 1.1 reads an unquoted ``off`` (or ``no``/``false``) as false: the strategy 'off'."""
    return "off" if value is False else value


class Hedging(IRModel):
    strategy: Annotated[
        Literal["off", "fixed", "percentile", "adaptive", "workload_aware", "exponential_backoff"],
        BeforeValidator(_yaml11_off),
    ] = "off"
    delay_ms: Int | None = Field(default=None, ge=0)
    percentile: Float | None = Field(default=None, gt=0, lt=100)
    max_hedges: Int | None = Field(default=None, ge=0, le=10)
    budget_percent: Float | None = Field(default=None, ge=0, le=100)
    options: HedgingOptions | None = None


class CircuitBreaker(IRModel):
    """``reliability.circuit_breaker``: a backend that sends requests stops sending for a while
    once too many of its recent requests failed (``backends.circuit``)."""

    failure_threshold: Int = Field(
        ge=1, description="Failed requests among the last `window` that open the circuit."
    )
    window: Int = Field(
        default=50, ge=1, le=100_000, description="The recent requests counted (the original's 50)."
    )
    reset_timeout_s: Float = Field(
        default=30.0,
        gt=0,
        le=86_400,
        description="Seconds the circuit stays open before probe requests are let through.",
    )
    half_open_requests: Int = Field(
        default=1,
        ge=1,
        le=1000,
        description="Probe requests that must all succeed to close the circuit again.",
    )

    @model_validator(mode="after")
    def _reachable(self) -> CircuitBreaker:
        if self.failure_threshold > self.window:
            raise ValueError(
                f"failure_threshold {self.failure_threshold} is more than the window of "
                f"{self.window} requests: the circuit could never open"
            )
        return self


class Monitoring(IRModel):
    """``reliability.monitoring``: limits on the requests of the recent runs, judged by the
    ``monitor`` stage and gated as the quality targets ``monitoring_<limit>`` (asset checks of
    the report under Dagster)."""

    latency_p95_ms: Float | None = Field(
        default=None, gt=0, description="The 95th percentile of request latency, at most."
    )
    error_rate: Float | None = Field(
        default=None, ge=0, le=1, description="The share of requests that failed, at most."
    )
    cost_per_1k: Float | None = Field(
        default=None, ge=0, description="The cost of 1000 requests, at most."
    )
    window: Int = Field(
        default=5, ge=1, le=1000, description="The runs pooled: this one and the latest before."
    )
    severity: Literal["warn", "error"] = "error"

    def limits(self) -> dict[str, float]:
        """Each limit set, by its field (and the metric ``monitoring.<field>``)."""
        found = {f: getattr(self, f) for f in ("latency_p95_ms", "error_rate", "cost_per_1k")}
        return {field: limit for field, limit in found.items() if limit is not None}

    @model_validator(mode="after")
    def _a_limit(self) -> Monitoring:
        if self.latency_p95_ms is None and self.error_rate is None and self.cost_per_1k is None:
            raise ValueError("expected at least one of latency_p95_ms, error_rate, cost_per_1k")
        return self


RetrainingReason = Literal["drift", "quality_drop", "monitoring"]
#: the setting (and so the stage) whose results show each reason
REASON_SETTINGS = {"drift": "drift", "quality_drop": "feedback", "monitoring": "monitoring"}


class RetrainingTrigger(IRModel):
    """``reliability.retraining_trigger``: under Dagster, a sensor that launches a job when the
    experiment's latest run shows one of ``when`` (``monitoring.retraining``), at most once a
    ``cooldown_hours``."""

    when: Annotated[list[RetrainingReason], distinct("reasons")] = Field(
        min_length=1,
        description="drift (features drifted), quality_drop (feedback worse than the day before, "
        "significantly), monitoring (a monitoring limit missed).",
    )
    launch: Name | None = Field(
        default=None, description="The experiment whose job is launched; default: this one."
    )
    cooldown_hours: Float = Field(
        default=24.0, gt=0, le=8760, description="No second launch sooner than this."
    )
    alpha: Float = Field(default=0.05, gt=0, lt=1, description="For quality_drop's p-values.")
    interval_s: Int = Field(
        default=300, ge=1, le=86_400, description="How often the sensor looks (seconds)."
    )
    default_status: Literal["running", "stopped"] = "stopped"


class Drift(IRModel):
    """``reliability.drift``: the ``drift`` stage compares recent inputs with a reference
    (``drift.stage``)."""

    reference: DatasetRef | None = Field(
        default=None, description="The data the model was trained or evaluated on."
    )
    reference_model: ModelRef | None = Field(
        default=None,
        description="Instead of reference: a registered model's version ({id, version}: a "
        "number or an alias, default champion), whose lineage names the data it was trained on.",
    )
    current: DatasetRef | None = Field(
        default=None, description="The recent inputs; default: the experiment's dataset."
    )
    current_from: Literal["dataset", "feedback"] = Field(
        default="dataset",
        description="feedback: the recent inputs are the inputs of the feedback events the "
        "feedback stage kept in this run (before the drift stage).",
    )
    # a feature twice would be tested twice, corrected twice over
    features: Annotated[list[Name] | None, distinct("features")] = Field(
        default=None,
        min_length=1,
        description="Columns compared; default: every column both share but the target.",
    )
    kinds: dict[Name, Literal["numeric", "categorical", "text"]] = Field(
        default_factory=dict, description="A column's kind, where the values' own is not it."
    )
    alpha: Float = Field(default=0.05, gt=0, lt=1)
    correction: Correction = "holm"
    psi_threshold: Float | None = Field(
        default=None, gt=0, le=100, description="A PSI at or above it is drift too (e.g. 0.2)."
    )
    bins: Int = Field(default=10, ge=2, le=1000, description="Quantile bins of a numeric PSI.")
    fail_on_drift: bool = False

    @model_validator(mode="after")
    def _one_reference(self) -> Drift:
        if (self.reference is None) == (self.reference_model is None):
            raise ValueError(
                "expected one reference: reference (a dataset) or reference_model (a registered "
                f"model's version), got {'both' if self.reference else 'neither'}"
            )
        return self


class Stats(IRModel):
    tests: TestNames = Field(default_factory=lambda: list[TestName](["ttest", "bootstrap"]))
    alpha: Float = Field(default=0.05, gt=0, lt=1)  # 0 and 1 make every test meaningless
    confidence_level: Float | None = Field(default=None, gt=0, lt=1)
    effect_size_type: (
        Literal["cohens_d", "hedges_g", "glass_delta", "eta_squared", "omega_squared"] | None
    ) = None
    multiple_testing_correction: Correction | None = None
    bootstrap_iterations: Int | None = Field(default=None, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("options", mode="before")
    @classmethod
    def _none_options(cls, value: Any) -> Any:
        return {} if value is None else value


class Fairness(IRModel):
    enabled: bool = False
    metrics: (
        list[
            Literal[
                "demographic_parity", "equalized_odds", "equal_opportunity", "predictive_parity"
            ]
        ]
        | None
    ) = None
    group_by: str | None = None
    threshold: Float | None = None
    fail_on_violation: bool | None = None
    options: dict[str, Any] | None = None


GuardrailProfile = Literal["default", "strict", "moderate", "permissive"]


class Guardrail(IRModel):
    profiles: list[GuardrailProfile] = Field(
        default_factory=lambda: list[GuardrailProfile](["default"])
    )
    prompt_injection_detection: bool | None = None
    jailbreak_detection: bool | None = None
    pii_detection: bool | None = None
    pii_redaction: bool | None = None
    content_moderation: bool | None = None
    fail_on_detection: bool | None = None
    options: dict[str, Any] | None = None


class ReliabilityConfig(IRModel):
    ensemble: Ensemble | None = None
    hedging: Hedging | None = None
    guardrails: Guardrail | None = None
    stats: Stats | None = None
    fairness: Fairness | None = None
    monitoring: Monitoring | None = None
    drift: Drift | None = None
    circuit_breaker: CircuitBreaker | None = None
    feedback: Feedback | None = None
    retraining_trigger: RetrainingTrigger | None = None

    @model_validator(mode="after")
    def _reasons_that_can_show(self) -> ReliabilityConfig:
        """A reason no stage can show would never launch anything: refused where it is."""
        trigger = self.retraining_trigger
        for index, reason in enumerate(trigger.when if trigger else []):
            setting = REASON_SETTINGS[reason]
            if getattr(self, setting) is None:
                raise PydanticCustomError(
                    "trigger_reason",
                    "'{reason}' is shown by reliability.{setting} (and its stage), which is not set",
                    {"reason": reason, "setting": setting,
                     "field": f"reliability.retraining_trigger.when[{index}]"},
                )  # fmt: skip
        return self
