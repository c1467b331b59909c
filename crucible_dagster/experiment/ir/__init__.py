"""The experiment IR: pydantic v2 models with ``extra="forbid"`` so typos fail loudly.

Field names and defaults follow the original crucible_ir (see
``shared/spec/crucible_reference.md`` §1) with the port's additions:
``parameters``, ``seeds``, ``quality_targets``, ``seed``, ``schedule``,
``output_dir``, ``budget``, ``telemetry``, ``dagster`` and ``registry``.

One module per role: ``base`` (the base model and strict numbers), ``refs`` (backend, dataset,
stages, reports), ``reliability``, ``lifecycle`` (the original's model records), ``judging``
(schedule, quality targets, regression gate), ``sweep_settings``, ``dagster_settings`` (the
``dagster:`` block) and ``experiment``. Every name is importable from here.
"""

from crucible_dagster.experiment.ir.base import (
    SEED_MAX,
    Float,
    Int,
    IRModel,
    Name,
    Seed,
)
from crucible_dagster.experiment.ir.budget import BUDGET_MAX, Budget
from crucible_dagster.experiment.ir.dagster_settings import (
    LEGACY_SPELLINGS,
    Automation,
    DagsterSettings,
    DagsterSweepSettings,
    Executor,
    SweepMode,
    legacy_spellings_used,
)
from crucible_dagster.experiment.ir.experiment import OWNER_EMAIL, Experiment
from crucible_dagster.experiment.ir.feedback_settings import (
    Feedback,
    FeedbackEvent,
    FeedbackType,
    PostgresSource,
)
from crucible_dagster.experiment.ir.judging import (
    Baseline,
    QualityTarget,
    RegressionBaseline,
    Schedule,
)
from crucible_dagster.experiment.ir.lifecycle import (
    DeploymentConfig,
    EarlyStopping,
    MlflowTracking,
    ModelRef,
    ModelVersion,
    Tracking,
    TrainingConfig,
)
from crucible_dagster.experiment.ir.refs import (
    REPORT_EXTENSIONS,
    RUN_RECORD_FILES,
    BackendRef,
    DatasetRef,
    FoldSpec,
    OutputOptions,
    OutputSpec,
    ReportFormat,
    SampleSpec,
    Sink,
    StageDef,
)
from crucible_dagster.experiment.ir.reliability import (
    LEGACY_CORRECTIONS,
    LEGACY_TEST_NAMES,
    CircuitBreaker,
    Correction,
    CorrectionName,
    Drift,
    Ensemble,
    Fairness,
    Guardrail,
    GuardrailProfile,
    Hedging,
    HedgingOptions,
    Monitoring,
    ReliabilityConfig,
    RetrainingTrigger,
    Stats,
    TestName,
    TestNames,
    normalize_correction,
    normalize_test_name,
)
from crucible_dagster.experiment.ir.study_settings import OptunaSettings, SearchParam
from crucible_dagster.experiment.ir.sweep_settings import (
    DEFAULT_TRIALS_PER_STEP,
    SweepConfig,
    step_size,
)
from crucible_dagster.experiment.ir.telemetry_settings import TelemetrySettings

__all__ = [
    "BUDGET_MAX",
    "DEFAULT_TRIALS_PER_STEP",
    "LEGACY_CORRECTIONS",
    "LEGACY_SPELLINGS",
    "LEGACY_TEST_NAMES",
    "OWNER_EMAIL",
    "REPORT_EXTENSIONS",
    "RUN_RECORD_FILES",
    "SEED_MAX",
    "Automation",
    "BackendRef",
    "Baseline",
    "Budget",
    "CircuitBreaker",
    "Correction",
    "CorrectionName",
    "DagsterSettings",
    "DagsterSweepSettings",
    "DatasetRef",
    "DeploymentConfig",
    "Drift",
    "EarlyStopping",
    "Ensemble",
    "Executor",
    "Experiment",
    "Fairness",
    "Feedback",
    "FeedbackEvent",
    "FeedbackType",
    "Float",
    "FoldSpec",
    "Guardrail",
    "GuardrailProfile",
    "Hedging",
    "HedgingOptions",
    "IRModel",
    "Int",
    "MlflowTracking",
    "ModelRef",
    "ModelVersion",
    "Monitoring",
    "Name",
    "OptunaSettings",
    "OutputOptions",
    "OutputSpec",
    "PostgresSource",
    "QualityTarget",
    "RegressionBaseline",
    "ReliabilityConfig",
    "ReportFormat",
    "RetrainingTrigger",
    "SampleSpec",
    "Schedule",
    "SearchParam",
    "Seed",
    "Sink",
    "StageDef",
    "Stats",
    "SweepConfig",
    "SweepMode",
    "TelemetrySettings",
    "TestName",
    "TestNames",
    "Tracking",
    "TrainingConfig",
    "legacy_spellings_used",
    "normalize_correction",
    "normalize_test_name",
    "step_size",
]
