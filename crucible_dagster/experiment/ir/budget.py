"""``budget:``: how much a run may spend on the models it calls before it stops calling them."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from crucible_dagster.experiment.ir.base import IRModel
from crucible_dagster.experiment.strict_numbers import bool_for_number

#: beyond any real budget (a trillion requests, tokens or currency units): a typo, refused
BUDGET_MAX = 10**12
BUDGET_FIELDS = ("max_cost", "max_requests", "max_tokens")


class Budget(IRModel):
    """Limits shared by every backend of a run (and every trial of a sweep run): a request is
    sent only while what was spent, plus what is in flight, plus its own estimate, fits."""

    max_cost: float | None = Field(
        default=None,
        description="Spend at most this (in the backends' price unit: "
        "price_per_million_input/output); needs priced backends.",
    )
    max_requests: int | None = Field(
        default=None, description="Send at most this many requests (retries and hedges count)."
    )
    max_tokens: int | None = Field(
        default=None, description="Use at most this many tokens (prompt + completion)."
    )

    @field_validator(*BUDGET_FIELDS, mode="before")
    @classmethod
    def _strict_amount(cls, value: Any, info: Any) -> Any:
        """A plain number >= 0: not text, not true/false, not NaN or infinite, not absurd."""
        if value is None:
            return value
        whole = info.field_name != "max_cost"
        what = "a whole number" if whole else "a number"
        if isinstance(value, bool):
            raise bool_for_number("an integer" if whole else "a number", value)
        bad = (
            not isinstance(value, int | float)
            or (whole and isinstance(value, float))
            or not math.isfinite(value)
            or not 0 <= value <= BUDGET_MAX
        )
        if bad:
            raise PydanticCustomError(
                "budget_amount",
                "expected {what} from 0 to {most}, found {found}",
                {"what": what, "most": f"{BUDGET_MAX:.0e}", "found": repr(value)[:60]},
            )
        return value

    @model_validator(mode="after")
    def _some_limit(self) -> Budget:
        if all(getattr(self, name) is None for name in BUDGET_FIELDS):
            raise PydanticCustomError(
                "empty_budget",
                "set at least one of max_cost, max_requests, max_tokens (or remove 'budget')",
            )
        return self
