"""``sweep:``: how a sweep's trials are compared. Its Dagster settings live in ``dagster.sweep``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator
from typing_extensions import Self

from crucible_dagster.experiment.ir.base import Float, Int, IRModel
from crucible_dagster.experiment.ir.dagster_settings import (
    DagsterSweepSettings,
    SweepMode,
    legacy_sweep_schema,
)
from crucible_dagster.experiment.ir.racing_settings import RacingSettings
from crucible_dagster.experiment.ir.reliability import Correction
from crucible_dagster.experiment.ir.study_settings import OptunaSettings

#: ``trials_per_step`` left unset: the trials fan out into this many steps (a typical sweep, a
#: 2x2 grid on 5 seeds, runs 5 trials a step), so the run shows each group's progress and
#: failure and the multiprocess executor runs them side by side ...
DEFAULT_STEPS = 4
#: ... of at most this many trials each: a step costs about 65 ms of event-log writes in process,
#: which a long sweep of light trials would feel (100 light trials: 2.1x their standalone time
#: at 20 a step, 2.7x at 5)
DEFAULT_TRIALS_PER_STEP = 20


def step_size(sweep: SweepConfig | None, n_trials: int) -> int:
    """Trials per Dagster step: ``sweep.trials_per_step``, or when unset a quarter of the
    trials (rounded up) and at most ``DEFAULT_TRIALS_PER_STEP``."""
    if sweep is not None and sweep.trials_per_step is not None:
        return sweep.trials_per_step
    return max(1, min(DEFAULT_TRIALS_PER_STEP, -(-n_trials // DEFAULT_STEPS)))


class SweepConfig(IRModel):
    """How a sweep's trials are compared: on which metric, in which direction, against what."""

    model_config = ConfigDict(**IRModel.model_config, json_schema_extra=legacy_sweep_schema)

    metric: str = Field(
        description="Dotted path into each trial's metrics: a number, or a list (per fold)."
    )
    direction: Literal["maximize", "minimize"] = "maximize"
    control: str | None = Field(
        default=None, description="A configuration id to compare every other one with."
    )
    per_sample: str | Literal[False] | None = Field(
        default=None,
        description=(
            "The per-sample table's column to compare trials on, sample by sample (blocked by "
            "sample and seed), when the trials score the same samples; default 'score' when "
            "metric is the score stage's (score...); false compares per-seed means only."
        ),
    )
    correction: Correction = "holm"
    alpha: Float = Field(default=0.05, gt=0, lt=1)
    trials_per_step: Int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description=(
            "Under Dagster, trials run in steps of this many (fewer steps, fewer event-log "
            "writes); unset: a quarter of the trials a step, at most 20. Each trial keeps its "
            "own run directory, and a re-execution from failure reruns only failed trials."
        ),
    )

    @field_validator("per_sample", mode="before")
    @classmethod
    def _column_or_false(cls, value: Any) -> Any:
        """One message for every wrong value (not one per branch of the union)."""
        if value is None or value is False or (isinstance(value, str) and value.strip()):
            return value
        raise ValueError(
            "expected the name of a per-sample table column (such as score or "
            f"score_token_f1) or false, got {value!r}"
        )

    strategy: Literal["grid", "racing", "optuna"] = Field(
        default="grid",
        description=(
            "grid: every configuration on every seed; racing: rounds of blocks (seeds, samples "
            "or folds), configurations shown worse are dropped (sweep.racing); optuna: a study "
            "samples configurations (sweep.optuna)."
        ),
    )
    racing: RacingSettings | None = Field(
        default=None,
        description="How the race runs and decides (strategy: racing; optuna's racing pruner).",
    )
    optuna: OptunaSettings | None = Field(
        default=None, description="The study: search space, sampler, trials, pruner, storage."
    )
    #: the experiment's ``dagster.sweep``, linked by the experiment (read by ``mode`` and ``pool``)
    _dagster: DagsterSweepSettings | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _racing_with_its_strategy(self) -> Self:
        raced = self.strategy == "racing" or (
            self.optuna is not None and self.optuna.pruner == "racing"
        )
        if self.racing is not None and not raced:
            raise ValueError(
                f"sweep.racing is set but sweep.strategy is {self.strategy!r}: add strategy: "
                "racing (or, with strategy optuna, optuna.pruner: racing)"
            )
        if (self.optuna is not None) != (self.strategy == "optuna"):
            raise ValueError(
                "sweep.strategy 'optuna' needs sweep.optuna (its search_space)"
                if self.optuna is None
                else f"sweep.optuna is set but sweep.strategy is {self.strategy!r}: add "
                "strategy: optuna"
            )
        if self.strategy == "optuna" and raced and self.race.block != "seeds":
            raise ValueError(
                f"sweep.racing.block: the racing pruner races a trial over seeds, got "
                f"{self.race.block!r} (block: seeds)"
            )
        return self

    @property
    def race(self) -> RacingSettings:
        """The race's settings (the defaults when ``strategy: racing`` names none)."""
        return self.racing if self.racing is not None else RacingSettings()

    @property
    def study(self) -> OptunaSettings:
        """The study's settings (``strategy: optuna`` always names them)."""
        assert self.optuna is not None, "sweep.strategy is not optuna"
        return self.optuna

    @property
    def dagster(self) -> DagsterSweepSettings:
        return self._dagster if self._dagster is not None else DagsterSweepSettings()

    @property
    def mode(self) -> SweepMode:
        """Deprecated: read ``experiment.dagster.sweep.mode``."""
        return self.dagster.mode

    @property
    def pool(self) -> str:
        """Deprecated: read ``experiment.dagster.sweep.pool``."""
        return self.dagster.pool

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """``update={"mode": ...}`` (the old spelling) still works: it updates the linked
        Dagster settings, which the experiment adopts when this copy is put in its ``sweep``."""
        update = dict(update or dict[str, Any]())
        legacy: dict[str, Any] = {k: update.pop(k) for k in ("mode", "pool") if k in update}
        copy = super().model_copy(update=update, deep=deep)
        if legacy:
            data: dict[str, Any] = {**self.dagster.model_dump(exclude_unset=True), **legacy}
            copy._dagster = DagsterSweepSettings.model_validate(data)
        return copy
