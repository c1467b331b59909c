"""One result shape for every test, JSON-safe through ``to_dict``.

``to_dict`` names the effect size by what it is (``cohens_d``, ``d_z``, ``rank_biserial``,
``matched_pairs_rank_biserial``, ``epsilon_squared``, ``kendalls_w``, ...) beside the generic
``effect_size`` keys, so a reader finds it under the same name in every test that reports it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec

NAN = float("nan")


@dataclass
class TestResult:
    test: str
    statistic: float = NAN
    p_value: float = NAN
    df: float | tuple[float, float] | None = None
    estimate: float | None = None  #: the difference x - y (or the statistic's point estimate)
    ci: tuple[float, float] | None = None  #: CI of ``estimate``
    confidence_level: float | None = None
    alternative: str = "two-sided"
    method: str = ""
    n: tuple[int, ...] = ()
    effect_size: float | None = None
    effect_size_name: str | None = None
    effect_size_ci: tuple[float, float] | None = None
    reason: str | None = None  #: why a value is NaN, when it is
    extra: dict[str, Any] = field(default_factory=dict)

    __test__ = False  # not a pytest test class

    @property
    def defined(self) -> bool:
        return not math.isnan(self.p_value)

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "df": list(self.df) if isinstance(self.df, tuple) else self.df,
            "estimate": self.estimate,
            "ci_low": self.ci[0] if self.ci else None,
            "ci_high": self.ci[1] if self.ci else None,
            "confidence_level": self.confidence_level,
            "alternative": self.alternative,
            "method": self.method,
            "n": list(self.n),
            "effect_size": self.effect_size,
            "effect_size_name": self.effect_size_name,
            "effect_size_ci_low": self.effect_size_ci[0] if self.effect_size_ci else None,
            "effect_size_ci_high": self.effect_size_ci[1] if self.effect_size_ci else None,
            "reason": self.reason,
        }
        if self.effect_size_name:  # the same key for the same effect size in every test
            name = self.effect_size_name
            out.setdefault(name, self.effect_size)
            out.setdefault(f"{name}_ci_low", out["effect_size_ci_low"])
            out.setdefault(f"{name}_ci_high", out["effect_size_ci_high"])
        out.update(self.extra)
        return out


P = ParamSpec("P")


def overflow_guarded(name: str) -> Callable[[Callable[P, TestResult]], Callable[P, TestResult]]:
    """A test whose arithmetic overflows (Python's ``**`` raises where numpy gives inf) returns
    an undefined result with the overflow reason instead of raising; numpy's overflow warnings
    stay off the terminal, since every site that divides by a spread checks it is finite."""

    def wrap(fn: Callable[P, TestResult]) -> Callable[P, TestResult]:
        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> TestResult:
            import numpy as np

            from crucible_dagster.bench.data import OVERFLOW

            with np.errstate(over="ignore", invalid="ignore"):
                try:
                    return fn(*args, **kwargs)
                except OverflowError:
                    reason = f"{OVERFLOW}: an intermediate value passed ±1.8e308"
                    return TestResult(test=name, reason=reason)

        return guarded

    return wrap
