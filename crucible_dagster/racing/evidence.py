"""What one look of a race decided, per configuration, with the evidence behind each decision.

Both tests (``sequential`` and ``frace``) answer with the same records, so the race, its JSON
state, the Dagster step metadata and the report read one shape."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ConfigEvidence:
    """One configuration at one look.

    ``statistic`` is the test's own number: the e-value (wealth) against the configuration for
    ``sequential``, its Friedman rank sum for ``frace``. ``p_value`` is the configuration's p
    (anytime-valid for ``sequential``; Conover's against the best for ``frace``; ``None`` when
    the test says nothing about it, e.g. the best itself); ``p_adjusted`` is what is compared with
    alpha (Bonferroni over the configurations for ``sequential``; unadjusted for ``frace``, as
    irace)."""

    config: str
    mean: float
    blocks: int
    statistic: float
    p_value: float | None
    p_adjusted: float | None
    dropped: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "mean": _finite_or_none(self.mean),
            "blocks": self.blocks,
            "statistic": _finite_or_none(self.statistic),
            "p_value": _finite_or_none(self.p_value),
            "p_adjusted": _finite_or_none(self.p_adjusted),
            "dropped": self.dropped,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Look:
    """The outcome of the test after a round: per-configuration evidence, plus the omnibus p
    (``frace``) and a note when the test could not decide (ties everywhere, one survivor)."""

    test: str
    blocks_done: int
    evidence: tuple[ConfigEvidence, ...]
    omnibus_p: float | None = None
    omnibus_statistic: float | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dropped(self) -> list[str]:
        return [e.config for e in self.evidence if e.dropped]

    def to_json(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "blocks_done": self.blocks_done,
            "omnibus_p": _finite_or_none(self.omnibus_p),
            "omnibus_statistic": _finite_or_none(self.omnibus_statistic),
            "note": self.note,
            "evidence": [e.to_json() for e in self.evidence],
            **({"extra": self.extra} if self.extra else {}),
        }


def _finite_or_none(value: Any) -> Any:
    """JSON has no NaN or infinity: an undefined number is written as null (its reason is in the
    note), never as a number that looks real."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def keep_min_survivors(
    survivors: list[str], candidates: dict[str, float], min_survivors: int
) -> set[str]:
    """Which of ``candidates`` (config -> strength of the evidence against it, larger is
    stronger) to drop so that at least ``min_survivors`` remain: the strongest cases first, ties
    broken by the configuration's place in ``survivors`` so a resumed race decides the same."""
    room = max(0, len(survivors) - max(1, min_survivors))
    order = sorted(candidates, key=lambda c: (-candidates[c], survivors.index(c)))
    return set(order[:room])
