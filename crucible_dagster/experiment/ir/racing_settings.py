"""``sweep.racing:``: how a race over blocks is run and decided (issue 25).

Strict like every IR model: unknown keys, ``true`` for a count, ``alpha`` outside (0, 1) and a
budget of 0 are refused with the field's path."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from typing_extensions import Self

from crucible_dagster.experiment.ir.base import Float, Int, IRModel

RaceMethod = Literal["sequential", "frace"]
BlockKind = Literal["samples", "seeds", "folds"]


class RaceBudget(IRModel):
    """What the race may spend: evaluations (configuration x block) and/or cost (the backends'
    price unit, as ``budget.max_cost``; read from the sweep's budget ledger, so it needs the
    experiment's ``budget:``). The race stops when either, or the experiment's budget, is spent."""

    evaluations: Int | None = Field(default=None, ge=1, le=10**12)
    cost: Float | None = Field(default=None, gt=0, le=1e12)

    @model_validator(mode="after")
    def _some_limit(self) -> Self:
        if self.evaluations is None and self.cost is None:
            raise ValueError("set evaluations or cost (or remove racing.budget)")
        return self


class RacingSettings(IRModel):
    """Rounds of blocks: every survivor is evaluated on the same next blocks, then the test says
    who is dropped."""

    method: RaceMethod = Field(
        default="sequential",
        description=(
            "sequential: the chance of dropping a best configuration is at most alpha over all "
            "looks and configurations; frace: Friedman then Conover (irace), not controlled "
            "over looks."
        ),
    )
    alpha: Float = Field(default=0.05, gt=0, lt=1)
    block: BlockKind = Field(
        default="seeds", description="What a block is: a seed, a dataset sample or a fold."
    )
    first_look: Int = Field(
        default=5, ge=1, le=1_000_000, description="Blocks before the first test."
    )
    round_size: Int = Field(default=5, ge=1, le=1_000_000, description="Blocks per later round.")
    max_blocks: Int | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        description="Stop after this many blocks (all by default).",
    )
    min_survivors: Int = Field(
        default=1, ge=1, le=100_000, description="The race ends when this many remain."
    )
    budget: RaceBudget | None = Field(
        default=None,
        description=(
            "At most this many evaluations (configuration x block; a number is evaluations) "
            "and/or this cost, shared with the experiment's budget."
        ),
    )
    score_range: tuple[Float, Float] = Field(
        default=(0.0, 1.0),
        description=(
            "[low, high] every score lies in; sequential's guarantee needs it (a score outside "
            "is an error). Tighter is faster."
        ),
    )
    order_seed: Int = Field(
        default=0,
        ge=0,
        le=2**32 - 1,
        description="Seed of the random order samples are visited in.",
    )

    @field_validator("budget", mode="before")
    @classmethod
    def _count_is_evaluations(cls, value: Any) -> Any:
        """``budget: 200`` is ``budget: {evaluations: 200}``."""
        if isinstance(value, int) and not isinstance(value, bool):
            return {"evaluations": value}
        return value

    @property
    def max_evaluations(self) -> int | None:
        return None if self.budget is None else self.budget.evaluations

    @property
    def max_cost(self) -> float | None:
        return None if self.budget is None else self.budget.cost

    def max_rounds(self, n_blocks: int) -> int:
        """The most rounds a race over ``n_blocks`` can take: the first look, then
        ``round_size`` blocks each (a Dagster race has one step per round)."""
        n = min(n_blocks, self.max_blocks) if self.max_blocks is not None else n_blocks
        return 0 if n <= 0 else 1 + max(0, -(-(n - self.first_look) // self.round_size))

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        low, high = self.score_range
        if not low < high or not math.isfinite(high - low):  # an infinite span scales all to 0
            raise ValueError(
                f"score_range must be [low, high] with low < high and a finite span, got "
                f"[{low}, {high}]"
            )
        if self.method == "frace" and self.first_look < 2:
            raise ValueError(
                "first_look must be at least 2 for frace (Friedman's test needs 2 blocks)"
            )
        if self.max_blocks is not None and self.max_blocks < self.first_look:
            raise ValueError(
                f"max_blocks ({self.max_blocks}) is below first_look ({self.first_look}): "
                "the race would end before its first test"
            )
        return self
