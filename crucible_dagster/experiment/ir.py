"""The experiment IR: pydantic v2 models with ``extra="forbid"`` so typos fail loudly.

Field names and defaults follow the original crucible_ir (see
``shared/spec/crucible_reference.md`` §1) with the port's additions:
``parameters``, ``seeds``, ``quality_targets``, ``seed``, ``schedule``,
``output_dir``, ``executor`` and ``registry``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
    with_config,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from crucible_dagster.experiment.cron import cron_problem
from crucible_dagster.experiment.names import check_name
from crucible_dagster.experiment.strict_numbers import bool_for_number

Name = Annotated[str, Field(min_length=1)]


def _refuse_bool(what: str) -> Any:
    """A setting that counts or measures refuses ``true`` (pydantic would read it as 1), as the
    Dagster loader and the run do."""

    def check(value: Any) -> Any:
        if isinstance(value, bool):
            raise bool_for_number(what, value)
        return value

    return BeforeValidator(check)


#: an integer setting: ``true`` is refused, not read as 1
Int = Annotated[int, _refuse_bool("an integer")]
#: a number setting: ``true``, ``.inf`` and ``.nan`` are refused
Float = Annotated[float, _refuse_bool("a number"), AllowInfNan(False)]


class IRModel(BaseModel):
    """Base for every IR model: unknown keys are errors, values are re-validated on assignment."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_assignment=True)


# --- references ---------------------------------------------------------------------------


class BackendRef(IRModel):
    id: Name
    profile: str = "default"
    options: dict[str, Any] | None = None
    model_version: str | None = None
    endpoint_url: str | None = None
    deployment_id: str | None = None
    fallback: BackendRef | None = None


class DatasetRef(IRModel):
    name: Name
    provider: str = "crucible_datasets"
    split: str = "train"
    options: dict[str, Any] | None = None
    version: str | None = None
    format: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")


ReportFormat = Literal["markdown", "json", "html", "csv"]
REPORT_EXTENSIONS = {"markdown": "md", "json": "json", "html": "html", "csv": "csv"}
#: the run's own records: no report may be written over them
RUN_RECORD_FILES = frozenset({"manifest.json", "telemetry.jsonl", "trace.json"})
Sink = Literal["file", "stdout", "asset"]
SEED_MAX = 2**32 - 1  # numpy's legacy RandomState and scikit-learn take unsigned 32-bit seeds
Seed = Annotated[
    Int, Field(ge=0, le=SEED_MAX, description="An unsigned 32-bit integer (0 to 4294967295).")
]


@with_config(ConfigDict(extra="forbid"))
class OutputOptions(TypedDict, total=False):
    """``outputs[].options``: the report stage reads ``path`` only; a mapping (not a model) so
    readers keep ``options.get("path")``, checked all the same: an unknown key is refused."""

    path: str


class OutputSpec(IRModel):
    """One report: its formats each go to a separate file (never overwriting each other)."""

    name: Name
    formats: list[ReportFormat] = Field(default_factory=lambda: list[ReportFormat](["markdown"]))
    sink: Sink = "file"
    options: OutputOptions | None = None

    def file_name(self, fmt: str) -> str:
        """The file this report writes for ``fmt``: ``<name>.<ext>``, or ``options.path``."""
        extension = REPORT_EXTENSIONS[fmt]
        requested = (self.options or {}).get("path")
        if not requested:
            return f"{self.name}.{extension}"
        stem = PurePosixPath(str(requested))
        if len(self.formats) > 1 or not stem.suffix:
            return str(stem.with_suffix(f".{extension}"))
        return str(stem)


class StageDef(IRModel):
    """One pipeline step: ``name`` is the op name; ``module`` picks another implementation."""

    name: str
    module: str | None = Field(
        default=None,
        description="Registered stage name or dotted path 'package.module:Class'; defaults to name.",
    )
    options: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, "stage name")

    @field_validator("options", mode="before")
    @classmethod
    def _none_options(cls, value: Any) -> Any:
        return {} if value is None else value

    @property
    def implementation(self) -> str:
        return self.module or self.name


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


class Stats(IRModel):
    tests: TestNames = Field(default_factory=lambda: list[TestName](["ttest", "bootstrap"]))
    alpha: Float = Field(default=0.05, ge=0, le=1)
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
    monitoring: dict[str, Any] | None = None
    drift: dict[str, Any] | None = None
    circuit_breaker: dict[str, Any] | None = None


# --- model lifecycle (kept so files written for the original still load) -----------------


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


# --- port additions -----------------------------------------------------------------------


class Schedule(IRModel):
    cron: str = Field(description="Cron expression, e.g. '0 3 * * *'.")
    timezone: str = "UTC"
    default_status: Literal["running", "stopped"] = "stopped"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        problem = cron_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"expected an IANA timezone such as 'Europe/Paris', got {value!r}"
            ) from None
        return value


class QualityTarget(IRModel):
    """A pass/fail target on the run's results, checked after the report (asset check under Dagster).

    ``threshold``: ``metric op value``. ``superiority``: the CI of ``treatment - baseline``
    lies above ``margin``. ``non_inferiority``: its lower bound lies above ``-margin``.
    ``equivalence``: the CI lies inside ``(-margin, margin)`` (two one-sided tests).
    """

    name: str
    kind: Literal["threshold", "superiority", "non_inferiority", "equivalence"] = "threshold"
    metric: str | None = Field(
        default=None, description="Dotted path into metrics, e.g. 'cv.accuracy.mean'."
    )
    op: Literal[">=", ">", "<=", "<"] = ">="
    value: Float | None = None
    treatment: str | None = None
    baseline: str | None = None
    margin: Float = 0.0
    severity: Literal["warn", "error"] = "warn"
    fail_run: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, "quality target name")

    @model_validator(mode="after")
    def _complete(self) -> QualityTarget:
        if self.kind == "threshold" and (self.metric is None or self.value is None):
            raise ValueError("a threshold target needs 'metric' and 'value'")
        if self.kind != "threshold" and (self.treatment is None or self.baseline is None):
            raise ValueError(f"a {self.kind} target needs 'treatment' and 'baseline'")
        if self.kind == "equivalence" and not self.margin > 0:
            raise ValueError(
                f"an equivalence target needs a margin above 0 (the bounds are -margin and "
                f"+margin), got {self.margin!r}"
            )
        return self


class RegressionBaseline(IRModel):
    """The regression gate of a recurring experiment: compare each run with a baseline run on
    the units both scored (folds from the same seed, sample ids), with a paired test."""

    policy: Literal["last_accepted", "last_completed", "run"] = Field(
        default="last_accepted",
        description="Which earlier run is the baseline: the last one accepted (crucible accept), "
        "the last completed one, or the run named by 'run'.",
    )
    run: str | None = Field(default=None, description="The baseline's run id (policy 'run').")
    metric: str = Field(
        description="What is compared per unit: 'scores:<group>' (a group of the run's "
        "scores.parquet, written by the bench stage) or a dotted metrics path to a list of "
        "numbers, one per unit."
    )
    kind: Literal["non_inferiority", "equivalence", "superiority"] = "non_inferiority"
    margin: Float = Field(default=0.0, ge=0, description="In the metric's units.")
    alpha: Float = Field(default=0.05, gt=0, lt=0.5)
    higher_is_better: bool = True
    fail_run: bool = Field(
        default=False, description="Fail the run (after its reports are written) on a regression."
    )

    @model_validator(mode="before")
    @classmethod
    def _run_means_policy_run(cls, value: Any) -> Any:
        if isinstance(value, dict) and value.get("run") and "policy" not in value:
            return {**value, "policy": "run"}
        return value

    @model_validator(mode="after")
    def _complete(self) -> RegressionBaseline:
        if self.policy == "run" and not self.run:
            raise ValueError("policy 'run' needs 'run': the baseline's run id")
        if self.kind == "equivalence" and not self.margin > 0:
            raise ValueError("an equivalence gate needs a margin above 0")
        return self


def _baseline_kind(value: Any) -> str:
    """The original's ``baseline`` is a model reference (it has an ``id``); the port's regression
    gate has a ``metric``: the keys say which one a file means."""
    if isinstance(value, BaseModel):
        return "gate" if isinstance(value, RegressionBaseline) else "model"
    return "model" if isinstance(value, dict) and "id" in value else "gate"


Baseline = Annotated[
    Annotated[ModelRef, Tag("model")] | Annotated[RegressionBaseline, Tag("gate")],
    Discriminator(_baseline_kind),
]


DEFAULT_TRIALS_PER_STEP = 20


class SweepConfig(IRModel):
    """How a sweep's trials are compared: on which metric, in which direction, against what."""

    metric: str = Field(
        description="Dotted path into each trial's metrics: a number, or a list (per fold)."
    )
    direction: Literal["maximize", "minimize"] = "maximize"
    control: str | None = Field(
        default=None, description="A configuration id to compare every other one with."
    )
    correction: Correction = "holm"
    alpha: Float = Field(default=0.05, gt=0, lt=1)
    mode: Literal["run", "partitions"] = Field(
        default="run",
        description="Under Dagster: 'run' runs the whole sweep as one run; 'partitions' makes each "
        "trial a partition (configuration x seed) of a trials asset, materialized and backfilled "
        "on its own, and the comparison an asset downstream of all of them.",
    )
    pool: str = Field(
        default="crucible_trials",
        pattern=r"^[A-Za-z0-9_./-]{1,128}$",
        description="Under Dagster, the concurrency pool of the trial steps: a limit set on the "
        "instance (`dagster instance concurrency set crucible_trials 4`, or `concurrency.pools` "
        "in dagster.yaml) caps how many trial steps run at once across all runs.",
    )
    trials_per_step: Int = Field(
        default=DEFAULT_TRIALS_PER_STEP,
        ge=1,
        le=1000,
        description=(
            "Under Dagster, trials run in one step (fewer event-log writes); each trial keeps its "
            "own run directory, and a re-execution from failure reruns only failed trials."
        ),
    )


#: the email pattern Dagster checks an asset owner with (dagster._core.utils.is_valid_email)
OWNER_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Z|a-z]{2,7}\b")

#: Dagster executors: one process, subprocesses of one machine, or Celery workers on many
Executor = Literal["in_process", "multiprocess", "celery"]


class Experiment(IRModel):
    """An experiment: what to run (pipeline), on what (dataset), and how to judge it."""

    id: str
    pipeline: list[StageDef] = Field(
        min_length=1, validation_alias=AliasChoices("pipeline", "stages")
    )
    backend: BackendRef | None = None
    description: str | None = None
    owner: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    dataset: DatasetRef | None = None
    reliability: ReliabilityConfig | None = None
    outputs: list[OutputSpec] = Field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    experiment_type: Literal["evaluation", "training", "comparison", "ablation", "any"] | None = (
        None
    )
    model_version: ModelVersion | None = None
    training_config: TrainingConfig | None = None
    baseline: Baseline | None = Field(
        default=None,
        description="A model reference (the original's, with 'id'), or the regression gate "
        "(with 'metric'): see RegressionBaseline.",
    )
    # port additions
    parameters: dict[str, list[Any]] = Field(default_factory=dict)
    seeds: list[Seed] = Field(default_factory=list)
    quality_targets: list[QualityTarget] = Field(default_factory=list)
    seed: Int | None = Field(
        default=None, ge=0, le=SEED_MAX, description="An unsigned 32-bit integer (0 to 4294967295)."
    )
    schedule: Schedule | None = None
    automation: Literal["eager", "on_cron"] | None = Field(
        default=None,
        description="Under Dagster, let the report assets materialize themselves: 'eager' when the "
        "dataset asset has a new data version, 'on_cron' on the schedule's cron (instead of a "
        "job schedule). Needs the dagster-daemon, like a schedule.",
    )
    output_dir: str | None = None
    sweep: SweepConfig | None = None
    executor: Executor = Field(
        default="in_process",
        description="Under Dagster: 'in_process' (one process), 'multiprocess' (a process per "
        "step), or 'celery' (steps on Celery workers; needs crucible_dagster[celery], a broker "
        "and a shared instance). Ignored by the standalone runner.",
    )
    registry: dict[str, str] = Field(
        default_factory=dict, description="Extra stage names: name -> 'package.module:Class'."
    )

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return check_name(value, "experiment id")

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str | None) -> str | None:
        # Under Dagster an owner with '@' is an asset owner's email, checked by Dagster's own
        # pattern when the code location loads: validate refuses what the loader would.
        if value is not None and "@" in value and not OWNER_EMAIL.fullmatch(value.strip()):
            raise ValueError(
                f"expected an email address such as 'ana@example.org', or a team name without "
                f"'@', got {value!r}"
            )
        return value

    @field_validator("parameters", mode="before")
    @classmethod
    def _scalar_parameters(cls, value: Any) -> Any:
        # A scalar parameter is a grid axis of one value, as in the original MLExperiment.
        if isinstance(value, dict):
            return {k: v if isinstance(v, list) else [v] for k, v in value.items()}
        return value

    @field_validator("parameters")
    @classmethod
    def _grid(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in value.items():
            check_name(key, "parameter name")
            if not values:
                raise ValueError(f"parameter {key!r}: expected a non-empty list of values, got []")
            exact = [json.dumps(v, sort_keys=True, default=repr) + type(v).__name__ for v in values]
            for index, item in enumerate(exact):
                if item in exact[:index]:
                    raise ValueError(
                        f"parameter {key!r}: expected distinct values, got {values[index]!r} twice "
                        "(a grid point would run twice under one trial id)"
                    )
        return value

    @field_validator("quality_targets", mode="before")
    @classmethod
    def _shorthand_targets(cls, value: Any) -> Any:
        # The original's form {metric: threshold in [0, 1]} means "metric >= threshold".
        if isinstance(value, dict):
            targets = []
            for metric, threshold in value.items():
                if isinstance(threshold, int | float) and not 0 <= threshold <= 1:
                    raise ValueError(
                        f"quality target {metric!r}: expected a threshold between 0 and 1, got {threshold!r}"
                    )
                name = metric.replace(".", "_")
                targets.append({"name": name, "metric": metric, "value": threshold})
            return targets
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> Experiment:
        seen: dict[str, int] = {}
        for index, stage in enumerate(self.pipeline):
            if stage.name in seen:
                raise PydanticCustomError(
                    "duplicate_stage",
                    "duplicate stage name '{name}' (first at pipeline[{first}]); op names must be "
                    "unique: rename it and set 'module: {impl}'",
                    {
                        "name": stage.name,
                        "first": seen[stage.name],
                        "impl": stage.implementation,
                        "field": f"pipeline[{index}].name",
                    },
                )
            seen[stage.name] = index
        if self.automation == "on_cron" and self.schedule is None:
            raise PydanticCustomError(
                "automation_needs_schedule",
                "automation 'on_cron' takes its cron from 'schedule': add a schedule with a cron",
                {"field": "automation"},
            )
        self._unique_report_files()
        names = [t.name for t in self.quality_targets]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise PydanticCustomError(
                    "duplicate_target",
                    "duplicate quality target name '{name}'",
                    {"name": name, "field": f"quality_targets[{index}].name"},
                )
        return self

    def _unique_report_files(self) -> None:
        """No report overwrites the run's records or another report of the same run."""
        written: dict[str, str] = {}
        for index, output in enumerate(self.outputs):
            if output.name in (o.name for o in self.outputs[:index]):
                raise PydanticCustomError(
                    "duplicate_output",
                    "duplicate output name '{name}'",
                    {"name": output.name, "field": f"outputs[{index}].name"},
                )
            if output.sink == "stdout":
                continue
            for fmt in dict.fromkeys(output.formats):  # a format listed twice is one file
                name = output.file_name(fmt)
                if name in RUN_RECORD_FILES or name in written:
                    other = "the run's own record" if name in RUN_RECORD_FILES else written[name]
                    raise PydanticCustomError(
                        "report_file_clash",
                        "report file '{file}' would overwrite {other}; choose another name",
                        {"file": name, "other": other, "field": f"outputs[{index}].name"},
                    )
                written[name] = f"report {output.name!r}"

    @property
    def is_sweep(self) -> bool:
        return bool(self.parameters) or bool(self.seeds)

    def stage(self, name: str) -> StageDef:
        for stage in self.pipeline:
            if stage.name == name:
                return stage
        raise KeyError(name)

    @property
    def regression_baseline(self) -> RegressionBaseline | None:
        return self.baseline if isinstance(self.baseline, RegressionBaseline) else None

    @property
    def enabled_stages(self) -> list[StageDef]:
        return [s for s in self.pipeline if s.enabled]
