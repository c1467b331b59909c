"""Group fairness of a binary classifier's predictions, each gap with a bootstrap interval.

Per group g (``positive`` is the favourable label):

- ``demographic_parity``: P(prediction = positive | g), the selection rate;
- ``equal_opportunity``: the true positive rate, P(pred = positive | reference = positive, g);
- ``equalized_odds``: the true and the false positive rate (its gap is the larger of the two);
- ``predictive_parity``: the precision, P(reference = positive | pred = positive, g).

A metric's gap is the largest difference between two groups; it is a violation when it
exceeds ``threshold``. The interval is a percentile bootstrap over samples, resampled within
each group (so every resample keeps every group), seeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

METRICS = ("demographic_parity", "equalized_odds", "equal_opportunity", "predictive_parity")


def _rate(numerator: np.ndarray, denominator: np.ndarray) -> float:
    total = float(denominator.sum())
    return float((numerator & denominator).sum()) / total if total else float("nan")


def group_rates(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """One group's rates from boolean arrays (prediction positive, reference positive)."""
    return {
        "selection_rate": float(pred.mean()) if pred.size else float("nan"),
        "true_positive_rate": _rate(pred, ref),
        "false_positive_rate": _rate(pred, ~ref),
        "precision": _rate(ref, pred),
    }


RATES_OF = {
    "demographic_parity": ("selection_rate",),
    "equal_opportunity": ("true_positive_rate",),
    "equalized_odds": ("true_positive_rate", "false_positive_rate"),
    "predictive_parity": ("precision",),
}


def gaps(rates: dict[str, dict[str, float]], metric: str) -> float:
    """The metric's gap: the largest between-group difference of its rate(s)."""
    worst = float("nan")
    for rate in RATES_OF[metric]:
        values = [r[rate] for r in rates.values() if r[rate] == r[rate]]
        if len(values) >= 2:
            gap = max(values) - min(values)
            worst = gap if worst != worst else max(worst, gap)
    return worst


@dataclass
class FairnessResult:
    metric: str
    gap: float
    ci: tuple[float, float]
    threshold: float
    by_group: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def violated(self) -> bool:
        return self.gap == self.gap and self.gap > self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "gap": self.gap,
            "ci_low": self.ci[0],
            "ci_high": self.ci[1],
            "threshold": self.threshold,
            "violated": self.violated,
            "by_group": self.by_group,
        }


def fairness_report(
    prediction: Sequence[Any],
    reference: Sequence[Any],
    group: Sequence[Any],
    *,
    positive: Any = 1,
    metrics: Sequence[str] = METRICS,
    threshold: float = 0.1,
    confidence_level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> list[FairnessResult]:
    pred = np.asarray([p == positive for p in prediction])
    ref = np.asarray([r == positive for r in reference])
    groups = np.asarray([str(g) for g in group])
    names = sorted(set(groups.tolist()))
    members = {g: np.flatnonzero(groups == g) for g in names}
    rates = {g: group_rates(pred[i], ref[i]) for g, i in members.items()}
    rng = np.random.default_rng(seed)
    resampled: dict[str, list[float]] = {m: [] for m in metrics}
    for _ in range(n_resamples):
        draw = {g: rng.choice(i, size=i.size, replace=True) for g, i in members.items()}
        boot = {g: group_rates(pred[i], ref[i]) for g, i in draw.items()}
        for metric in metrics:
            resampled[metric].append(gaps(boot, metric))
    tail = (1 - confidence_level) / 2
    results = []
    for metric in metrics:
        values = np.asarray([v for v in resampled[metric] if v == v])
        ci = (
            (float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail)))
            if values.size
            else (float("nan"), float("nan"))
        )
        by_group = {
            g: {k: rates[g][k] for k in RATES_OF[metric]} | {"n": int(members[g].size)}
            for g in names
        }
        results.append(FairnessResult(metric, gaps(rates, metric), ci, threshold, by_group))
    return results
