"""The experiment: what to run (pipeline), on what (dataset), and how to judge it."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError
from typing_extensions import Self

import crucible_dagster.experiment.ir.lifecycle as lifecycle
from crucible_dagster.experiment.ir.base import SEED_MAX, Int, IRModel, Seed, first_repeat
from crucible_dagster.experiment.ir.budget import Budget
from crucible_dagster.experiment.ir.dagster_settings import (
    Automation,
    DagsterSettings,
    Executor,
    legacy_schema,
    move_legacy_spellings,
)
from crucible_dagster.experiment.ir.judging import (
    Baseline,
    QualityTarget,
    RegressionBaseline,
    Schedule,
)
from crucible_dagster.experiment.ir.refs import (
    RUN_RECORD_FILES,
    BackendRef,
    DatasetRef,
    OutputSpec,
    StageDef,
    dagster_spelling,
)
from crucible_dagster.experiment.ir.reliability import ReliabilityConfig
from crucible_dagster.experiment.ir.sweep_settings import SweepConfig
from crucible_dagster.experiment.ir.telemetry_settings import TelemetrySettings
from crucible_dagster.experiment.names import check_job_name, check_name

#: the email pattern Dagster checks an asset owner with (dagster._core.utils.is_valid_email)
OWNER_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Z|a-z]{2,7}\b")


#: the most trials a sweep may list (grid points x seeds)
MAX_TRIALS = 100_000


class Experiment(IRModel):
    """An experiment: what to run (pipeline), on what (dataset), and how to judge it."""

    model_config = ConfigDict(**IRModel.model_config, json_schema_extra=legacy_schema)

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
    model_version: lifecycle.ModelVersion | None = None
    training_config: lifecycle.TrainingConfig | None = None
    tracking: lifecycle.Tracking | None = None  # MLflow: where register logs and registers
    deployment: lifecycle.DeploymentConfig | None = None  # which alias promote moves
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
    output_dir: str | None = None
    sweep: SweepConfig | None = None
    budget: Budget | None = Field(
        default=None,
        description="Limits on what the run's backends may spend (max_cost, max_requests, "
        "max_tokens), shared by every backend of the run and every trial of a sweep run.",
    )
    telemetry: TelemetrySettings | None = Field(
        default=None, description="Which request events a run keeps (sampling_rate, capture_text)."
    )
    dagster: DagsterSettings = Field(
        default_factory=DagsterSettings,
        description="Settings only the Dagster adapter reads (executor, automation, a sweep's "
        "mode and pool); the standalone runner ignores them.",
    )
    registry: dict[str, str] = Field(
        default_factory=dict, description="Extra stage names: name -> 'package.module:Class'."
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_spellings(cls, value: Any) -> Any:
        # executor, automation, sweep.mode and sweep.pool were top-level: still read, moved
        return move_legacy_spellings(value) if isinstance(value, dict) else value

    @model_validator(mode="before")
    @classmethod
    def _one_pipeline(cls, value: Any) -> Any:
        # 'stages' is another name for 'pipeline': both given is one list too many, not a typo
        if isinstance(value, dict) and "stages" in value and "pipeline" in value:
            raise PydanticCustomError(
                "pipeline_twice",
                "both 'stages' and 'pipeline' were given; 'stages' is another name for "
                "'pipeline': keep one",
                {"field": "stages"},
            )
        return value

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return check_job_name(value, "experiment id")

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
            index = first_repeat(exact)
            if index is not None:
                raise ValueError(
                    f"parameter {key!r}: expected distinct values, got {values[index]!r} twice "
                    "(a grid point would run twice under one trial id)"
                )
        return value

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: list[int]) -> list[int]:
        # as a repeated grid value: one trial id (seed_<n>) would be run, or counted, twice
        index = first_repeat(value)
        if index is not None:
            raise PydanticCustomError(
                "duplicate_seed",
                "expected distinct seeds, got {seed} twice (a trial would run twice under "
                "one trial id)",
                {"seed": value[index], "field": f"seeds[{index}]"},
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
        self._check_dagster()
        self._check_trial_count()
        self._check_race()
        self._check_study()
        self._unique_report_files()
        names = [t.name for t in self.quality_targets]
        for index, name in enumerate(names):
            if name in names[:index] or name.startswith("monitoring_"):
                raise PydanticCustomError(
                    "duplicate_target",
                    "duplicate quality target name '{name}' (monitoring_* names are "
                    "reliability.monitoring's)",
                    {"name": name, "field": f"quality_targets[{index}].name"},
                )
        return self

    def _check_trial_count(self) -> None:
        """A grid is listed trial by trial (plan, dry run, partitions): 1000^3 points hung them."""
        trials = math.prod(len(v) for v in self.parameters.values()) * max(1, len(self.seeds))
        if trials > MAX_TRIALS:
            raise PydanticCustomError(
                "too_many_trials",
                "expected at most {most} trials (grid points x seeds), found {n}",
                {"most": MAX_TRIALS, "n": trials, "field": "parameters"},
            )

    def _check_race(self) -> None:
        """A race needs configurations to drop and blocks to race on: seeds, or the dataset's
        samples or folds (then one seed at most: a block is a sample, not a replicate)."""
        if self.sweep is None or self.sweep.strategy != "racing":
            return
        race = self.sweep.race
        if race.block == "seeds" and (len(self.seeds) < 2 or not self.parameters):
            raise PydanticCustomError(
                "racing_needs_a_grid",
                "sweep.strategy 'racing' races configurations (parameters) over seeds: "
                "give parameters and at least 2 seeds (found {n} seed(s))",
                {"n": len(self.seeds), "field": "sweep.strategy"},
            )
        if race.block != "seeds":
            self._check_race_on_data(race.block)
        if race.max_cost is not None and self.budget is None:
            raise PydanticCustomError(
                "race_cost_needs_budget",
                "sweep.racing.budget.cost is read from the sweep's budget ledger: set the "
                "experiment's budget (e.g. budget: {{max_cost: ...}}) so its spend is counted",
                {"field": "sweep.racing.budget.cost"},
            )
        if self.dagster.sweep.mode == "partitions":
            raise PydanticCustomError(
                "racing_is_one_run",
                "a race decides round by round in one run: dagster.sweep.mode must be 'run' "
                "with sweep.strategy 'racing'",
                {"field": "dagster.sweep.mode"},
            )

    def _check_race_on_data(self, block: str) -> None:
        problem = None
        if not self.parameters:
            problem = "give parameters: the configurations to race"
        elif self.dataset is None:
            problem = f"block {block!r} needs a dataset (its {block} are the blocks)"
        elif block == "folds" and self.dataset.folds is None:
            problem = "block 'folds' needs dataset.folds (k): the dataset has no folds"
        elif len(self.seeds) > 1:
            problem = f"block {block!r} races one seed; found {len(self.seeds)} seeds"
        elif not self._has_per_sample_column():
            problem = (
                f"block {block!r} scores each sample: set sweep.per_sample to a column of the "
                "per-sample table, or a score stage metric (score...)"
            )
        if problem is not None:
            raise PydanticCustomError(
                "racing_needs_blocks",
                "{problem}",
                {"problem": problem, "field": "sweep.racing.block"},
            )

    def _has_per_sample_column(self) -> bool:
        """As ``sweeps.per_sample.score_column``: a named column, or the score stage's metric."""
        sweep = self.sweep
        assert sweep is not None
        if sweep.per_sample is False:
            return False
        return isinstance(sweep.per_sample, str) or sweep.metric.split(".")[0] == "score"

    def _check_study(self) -> None:
        """A study samples configurations itself (no grid), one run for all its trials; a
        pruner needs at least two seeds (its blocks) to cut a trial short."""
        if self.sweep is None or self.sweep.strategy != "optuna":
            return
        problem = (
            (
                "parameters",
                "the search space replaces the grid: move parameters into "
                "sweep.optuna.search_space (or use strategy grid)",
            )
            if self.parameters
            else (
                "dagster.sweep.mode",
                "a study runs as one run: dagster.sweep.mode must "
                "be 'run' with sweep.strategy 'optuna'",
            )
            if self.dagster.sweep.mode == "partitions"
            else (
                "sweep.optuna.pruner",
                f"pruner {self.sweep.study.pruner!r} stops a trial "
                "between seeds: give at least 2 seeds (or pruner: none)",
            )
            if self.sweep.study.pruner != "none" and len(self.seeds) < 2
            else None
        )
        if problem is not None:
            raise PydanticCustomError("optuna_setting", problem[1], {"field": problem[0]})

    def _check_dagster(self) -> None:
        """The ``dagster:`` block against the rest, and the sweep linked to its settings."""
        if self.dagster.automation == "on_cron" and self.schedule is None:
            raise PydanticCustomError(
                "automation_needs_schedule",
                "automation 'on_cron' takes its cron from 'schedule': add a schedule with a cron",
                {"field": "dagster.automation"},
            )
        if self.sweep is None and "sweep" in self.dagster.model_fields_set:
            raise PydanticCustomError(
                "dagster_sweep_needs_sweep",
                "dagster.sweep sets how a sweep runs under Dagster: add 'sweep' (its metric)",
                {"field": "dagster.sweep"},
            )
        self._link_sweep()

    def _link_sweep(self) -> None:
        """``sweep.mode`` and ``sweep.pool`` (old names) read this experiment's ``dagster.sweep``;
        a sweep shared with another experiment is copied first, never relinked under it."""
        sweep = self.sweep
        if sweep is None or sweep._dagster is self.dagster.sweep:
            return
        if sweep._dagster is not None:
            sweep = sweep.model_copy()
            self.__dict__["sweep"] = sweep
        sweep._dagster = self.dagster.sweep

    @property
    def executor(self) -> Executor:
        """Deprecated: read ``dagster.executor``."""
        return self.dagster.executor

    @property
    def automation(self) -> Automation | None:
        """Deprecated: read ``dagster.automation``."""
        return self.dagster.automation

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """``update={"executor": ...}`` (an old spelling) still works; a ``sweep`` copied with
        ``mode``/``pool`` brings its Dagster settings along."""
        update = dict(update or dict[str, Any]())
        dagster = update.get("dagster", self.dagster)
        sweep = update.get("sweep")
        if isinstance(sweep, SweepConfig) and sweep._dagster is not None:
            dagster = dagster.model_copy(update={"sweep": sweep._dagster})
        legacy: dict[str, Any] = {
            k: update.pop(k) for k in ("executor", "automation") if k in update
        }
        if legacy:
            data: dict[str, Any] = {**dagster.model_dump(exclude_unset=True), **legacy}
            dagster = DagsterSettings.model_validate(data)
        if dagster is not self.dagster:
            update["dagster"] = dagster
        copy = super().model_copy(update=update, deep=deep)
        copy._link_sweep()
        return copy

    def _unique_report_files(self) -> None:
        """No report overwrites the run's records or another report of the same run."""
        written: dict[str, str] = {}
        for index, output in enumerate(self.outputs):
            spelled = dagster_spelling(output.name)
            other = next(
                (o.name for o in self.outputs[:index] if dagster_spelling(o.name) == spelled), None
            )
            if other is not None:
                raise PydanticCustomError(
                    "duplicate_output",
                    "duplicate output name '{name}'"
                    + (
                        ""
                        if other == output.name
                        else " (the same Dagster name as '{other}': Dagster reads '-' and '.' as '_')"
                    ),
                    {"name": output.name, "other": other, "field": f"outputs[{index}].name"},
                )
            if output.path_escapes():
                raise PydanticCustomError(
                    "path_escapes",
                    "expected a file name inside the run directory, got {path}: a path that "
                    "escapes it (absolute, or up with '..') is refused",
                    {
                        "path": repr((output.options or {}).get("path")),
                        "field": f"outputs[{index}].options.path",
                    },
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
        studied = self.sweep is not None and self.sweep.strategy == "optuna"
        return bool(self.parameters) or bool(self.seeds) or studied

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
