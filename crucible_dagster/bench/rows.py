"""The typed rows of a comparison, and their JSON (and table) forms.

Reports, quality targets, sweeps and the Dagster adapter read comparisons back from a run's
metrics (JSON); ``ComparisonRow.from_dict`` gives them named fields instead of string keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

NAN = math.nan


@dataclass
class ComparisonRow:
    """One pairwise test: ``group_a − group_b``, with its CI, effect size and power note."""

    group_a: str
    group_b: str
    test: str
    method: str = ""
    statistic: float = NAN
    df: float | list[float] | None = None
    p_value: float = NAN
    p_adjusted: float = NAN
    significant: bool = False
    estimate: float = NAN
    ci_low: float = NAN
    ci_high: float = NAN
    effect_size_name: str | None = None
    effect_size: float = NAN
    effect_size_ci_low: float = NAN
    effect_size_ci_high: float = NAN
    n_a: int = 0
    n_b: int = 0
    min_detectable_effect: float = NAN
    power_note: str = ""
    reason: str | None = None
    #: test-specific figures (uncorrected statistic and p, Cliff's delta, Hedges' g, U, W+)
    extra: dict[str, Any] = field(default_factory=dict)
    #: shown for context (the naive paired t beside the corrected one), outside every test family
    reference_only: bool = False

    @property
    def label(self) -> str:
        return f"{self.group_a} − {self.group_b}"

    @property
    def has_ci(self) -> bool:
        return math.isfinite(self.ci_low) and math.isfinite(self.ci_high)

    def compares(self, a: str, b: str) -> bool:
        return {self.group_a, self.group_b} == {a, b}

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name in _PLAIN}
        data.update(self.extra)
        if self.reference_only:
            data["reference_only"] = True
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ComparisonRow:
        known = {k: _number(k, v) for k, v in data.items() if k in _PLAIN}
        extra = {k: v for k, v in data.items() if k not in _PLAIN and k != "reference_only"}
        return cls(**known, extra=extra, reference_only=bool(data.get("reference_only")))


_PLAIN = [f.name for f in fields(ComparisonRow) if f.name not in ("extra", "reference_only")]
_FLOATS = {f.name for f in fields(ComparisonRow) if f.type == "float"}


def _number(key: str, value: Any) -> Any:
    """JSON stores NaN as null: read it back as NaN for the float fields."""
    return NAN if value is None and key in _FLOATS else value


@dataclass
class OmnibusRow:
    """One test across all groups (ANOVA, Welch, Kruskal-Wallis, Friedman, Cochran's Q)."""

    test: str
    statistic: float = NAN
    p_value: float = NAN
    df: float | list[float] | None = None
    effect_size_name: str | None = None
    effect_size: float = NAN
    significant: bool = False
    reason: str | None = None
    #: Friedman only: each group's mean rank (1 = smallest value)
    mean_ranks: list[float] | None = None
    #: test-specific figures (Cochran's Q's exact p and each group's proportion)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        skip = ("mean_ranks", "extra")
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        if self.test == "friedman":
            data["mean_ranks"] = self.mean_ranks
        data.update(self.extra)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OmnibusRow:
        names = {f.name for f in fields(cls)} - {"extra"}
        extra = {k: v for k, v in data.items() if k not in names and k != "extra"}
        known = {k: _number(k, v) for k, v in data.items() if k in names}
        return cls(**known, extra=extra)


def comparison_rows(bench: Any) -> list[ComparisonRow]:
    """The rows of a stored comparison (``metrics["bench"]`` or a sweep's), typed."""
    if not isinstance(bench, Mapping):
        return []
    rows = bench.get("comparisons") or []
    return [ComparisonRow.from_dict(r) for r in rows if isinstance(r, Mapping)]


def omnibus_rows(bench: Any) -> list[OmnibusRow]:
    if not isinstance(bench, Mapping):
        return []
    return [OmnibusRow.from_dict(r) for r in bench.get("omnibus") or [] if isinstance(r, Mapping)]
