"""``sweep.optuna:``: a search with Optuna instead of a grid (``sweep.strategy: optuna``, issue 25).

The search space is a list (each parameter names itself, so a name given twice is an error at
its item, not a YAML key silently overwritten); each item is checked for its kind with the
item's path: an empty space, ``low >= high``, ``log`` with ``low <= 0``, an unknown kind, a
categorical without choices. Nothing here imports Optuna: the IR validates without the extra."""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError
from typing_extensions import Self

from crucible_dagster.experiment.ir.base import Float, Int, IRModel, Name, first_repeat
from crucible_dagster.experiment.names import check_name

ParamKind = Literal["float", "int", "categorical"]
SamplerName = Literal["tpe", "random", "cmaes", "grid"]
PrunerName = Literal["racing", "median", "wilcoxon", "none"]
#: the most points a grid sampler's space may hold (every one is a trial)
MAX_GRID_POINTS = 100_000
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
Choice = str | int | float | bool | None


class SearchParam(IRModel):
    """One dimension of the space: a float or int range (``log`` for a log scale, ``step`` for
    a grid of values) or a list of categorical ``choices``."""

    name: Name
    kind: ParamKind = Field(description="float, int or categorical")
    low: Float | None = None
    high: Float | None = None
    log: bool = Field(default=False, description="Sample on a log scale (low must be > 0).")
    step: Float | None = Field(default=None, gt=0, description="Only multiples of step from low.")
    choices: list[Choice] | None = Field(default=None, description="A categorical's values.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value == "seed":
            raise ValueError(
                "'seed' is the trial's seed (${params.seed}); name the parameter otherwise"
            )
        return check_name(value, "parameter name")

    @model_validator(mode="after")
    def _fits_its_kind(self) -> Self:
        if self.kind == "categorical":
            return self._categorical()
        if self.choices is not None:
            raise ValueError(f"choices are for kind categorical; a {self.kind} takes low and high")
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.kind} parameter needs low and high")
        if not self.low < self.high:
            raise ValueError(f"expected low < high, got low {self.low:g} and high {self.high:g}")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0, got low {self.low:g}")
        if self.kind == "int":
            return self._int()
        if self.log and self.step is not None:
            raise ValueError("a float on a log scale takes no step (Optuna refuses both)")
        return self

    def _int(self) -> Self:
        for label, value in (("low", self.low), ("high", self.high), ("step", self.step)):
            if value is not None and not float(value).is_integer():
                raise ValueError(f"an int parameter's {label} must be whole, got {value:g}")
        if self.log and self.step not in (None, 1):
            raise ValueError("an int on a log scale takes step 1 only (Optuna refuses others)")
        return self

    def _categorical(self) -> Self:
        if self.low is not None or self.high is not None or self.log or self.step is not None:
            raise ValueError("a categorical takes choices only (no low, high, log or step)")
        if not self.choices:
            raise ValueError("a categorical needs a non-empty list of choices")
        keys = [f"{type(c).__name__}:{c!r}" for c in self.choices]
        index = first_repeat(keys)
        if index is not None:
            raise ValueError(f"expected distinct choices, got {self.choices[index]!r} twice")
        return self

    def grid_values(self) -> list[Any] | None:
        """The finite values a grid sampler walks (None: a continuous float has none)."""
        if self.kind == "categorical":
            return list(self.choices or [])
        assert self.low is not None and self.high is not None
        step = self.step if self.step is not None else (1.0 if self.kind == "int" else None)
        if step is None:
            return None
        count = math.floor((self.high - self.low) / step + 1e-9) + 1
        if count > MAX_GRID_POINTS:
            return [None] * (MAX_GRID_POINTS + 1)  # too many; the caller says so
        values = [self.low + i * step for i in range(count)]
        return [int(v) for v in values] if self.kind == "int" else values


class OptunaSettings(IRModel):
    """The study: its space, sampler, trial count, pruner and where it is stored."""

    search_space: list[SearchParam] = Field(
        min_length=1, max_length=1000, description="The parameters Optuna samples."
    )
    sampler: SamplerName = Field(default="tpe", description="tpe, random, cmaes or grid")
    n_trials: Int = Field(default=20, ge=1, le=100_000, description="Trials in the study.")
    pruner: PrunerName = Field(
        default="none",
        description=(
            "racing: our sequential test over the seeds against the best trials so far "
            "(sweep.racing's alpha, first_look, round_size, score_range); median, wilcoxon: "
            "Optuna's own; none."
        ),
    )
    storage_env: str | None = Field(
        default=None,
        description=(
            "An environment variable holding the study's storage URL (PostgreSQL, shared by "
            "Celery workers); unset: optuna.db (SQLite) in the sweep's run directory."
        ),
    )

    @field_validator("storage_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not ENV_NAME.fullmatch(value):
            shown = "a URL" if "://" in value or "@" in value else repr(value[:80])
            raise ValueError(
                f"expected the name of an environment variable (such as OPTUNA_STORAGE), got "
                f"{shown}: the URL itself (it may hold a password) never goes in a file"
            )
        return value

    @model_validator(mode="after")
    def _distinct_and_gridded(self) -> Self:
        names = [p.name for p in self.search_space]
        index = first_repeat(names)
        if index is not None:
            raise PydanticCustomError(
                "duplicate_parameter",
                "parameter '{name}' is already search_space[{first}]: each name once",
                {
                    "name": names[index],
                    "first": names.index(names[index]),
                    "field": f"sweep.optuna.search_space[{index}].name",
                },
            )
        if self.sampler == "grid":
            self._check_grid()
        return self

    def _check_grid(self) -> None:
        size = 1
        for index, param in enumerate(self.search_space):
            values = param.grid_values()
            if values is None:
                raise ValueError(
                    f"search_space[{index}] ({param.name}): the grid sampler needs a finite set "
                    "of values: give a float parameter a step"
                )
            size *= len(values)
            if size > MAX_GRID_POINTS:
                raise ValueError(f"the grid holds over {MAX_GRID_POINTS} points: coarsen it")
        if self.n_trials > size:
            raise ValueError(
                f"n_trials ({self.n_trials}) is more than the grid's {size} points: the grid "
                "sampler would repeat them; set n_trials to at most the grid's size"
            )

    def grid(self) -> dict[str, list[Any]]:
        """The grid sampler's space: every parameter's values."""
        return {p.name: list(p.grid_values() or []) for p in self.search_space}
