"""How a run is judged: its schedule, quality targets, regression gate and sweep comparison."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, Tag, field_validator, model_validator

from crucible_dagster.experiment.cron import cron_problem
from crucible_dagster.experiment.ir.base import Float, IRModel
from crucible_dagster.experiment.ir.lifecycle import ModelRef
from crucible_dagster.experiment.names import check_name


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
