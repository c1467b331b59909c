"""Group fairness of a binary classifier's predictions, each gap with a bootstrap interval.

Per group g (``positive`` is the favourable label):

- ``demographic_parity``: P(prediction = positive | g), the selection rate;
- ``equal_opportunity``: the true positive rate, P(pred = positive | reference = positive, g);
- ``equalized_odds``: the true and the false positive rate (its gap is the larger of the two);
- ``predictive_parity``: the precision, P(reference = positive | pred = positive, g).

A metric's gap is the largest difference between two groups; it is a violation when it
exceeds ``threshold`` (a gap against a group of one sample is flagged beside it). The interval
is a percentile bootstrap over samples, resampled within each group (so every resample keeps
every group), seeded.

What the data cannot say is said, never shown as a number that looks real: rows with a
missing prediction, reference or group are dropped and counted; a metric is undefined (gap
``None`` in the record, with ``reason``) when fewer than two groups have its rate (one group, or
a single class leaves the rate's denominator empty); a group left out of a gap, a group of one
(whose rate a bootstrap cannot vary: no interval) and an interval that had to be widened to
hold its own estimate are ``flags``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

METRICS = ("demographic_parity", "equalized_odds", "equal_opportunity", "predictive_parity")
NAN = float("nan")


def _rate(numerator: np.ndarray, denominator: np.ndarray) -> float:
    total = float(denominator.sum())
    return float((numerator & denominator).sum()) / total if total else NAN


def group_rates(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """One group's rates from boolean arrays (prediction positive, reference positive)."""
    return {
        "selection_rate": float(pred.mean()) if pred.size else NAN,
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
#: why a group has no value for a rate: the rate's denominator is empty in it
EMPTY_DENOMINATOR = {
    "selection_rate": "no samples",
    "true_positive_rate": "no samples with reference = positive",
    "false_positive_rate": "no samples with reference != positive",
    "precision": "no samples predicted positive",
}


def gaps(rates: dict[str, dict[str, float]], metric: str) -> float:
    """The metric's gap: the largest between-group difference of its rate(s); NaN unless every
    rate of the metric is defined in at least two groups."""
    worst = NAN
    for rate in RATES_OF[metric]:
        values = [r[rate] for r in rates.values() if r[rate] == r[rate]]
        if len(values) < 2:
            return NAN
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
    reason: str | None = None  # why the gap is undefined
    ci_reason: str | None = None  # why the interval is undefined
    flags: list[str] = field(default_factory=list)
    n: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    #: groups of one sample in the gap (each also a flag)
    groups_of_one: list[str] = field(default_factory=list)

    @property
    def defined(self) -> bool:
        return self.gap == self.gap

    @property
    def violated(self) -> bool:
        return self.defined and self.gap > self.threshold

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: an undefined value is ``None`` beside its reason, never NaN."""
        ci = self.ci if self.ci[0] == self.ci[0] else (None, None)
        return {
            "metric": self.metric,
            "gap": self.gap if self.defined else None,
            "ci_low": ci[0],
            "ci_high": ci[1],
            "threshold": self.threshold,
            "violated": self.violated if self.defined else None,
            "reason": self.reason,
            "ci_reason": self.ci_reason,
            "flags": list(self.flags),
            "n": self.n,
            "dropped": dict(self.dropped),
            "by_group": {
                g: {k: (v if v == v else None) for k, v in r.items()}
                for g, r in self.by_group.items()
            },
        }


def _missing(value: Any) -> bool:
    """None, NaN, NaT or pandas' NA (whose comparisons are neither true nor false)."""
    if value is None:
        return True
    try:
        return bool(value != value)
    except (TypeError, ValueError):
        return True


@dataclass
class _Data:
    pred: np.ndarray
    ref: np.ndarray
    members: dict[str, np.ndarray]
    dropped: dict[str, int]


def _clean(
    prediction: Sequence[Any], reference: Sequence[Any], group: Sequence[Any], positive: Any
) -> _Data:
    """Rows with all three values; each missing field counted (a row can count in several)."""
    columns = {"prediction": list(prediction), "reference": list(reference), "group": list(group)}
    sizes = {k: len(v) for k, v in columns.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"prediction, reference and group differ in length: {sizes}")
    gone = {k: [_missing(v) for v in values] for k, values in columns.items()}
    keep = [not any(flags) for flags in zip(*gone.values(), strict=True)]
    dropped = {k: sum(flags) for k, flags in gone.items()}
    dropped["rows"] = keep.count(False)
    pick = [i for i, k in enumerate(keep) if k]
    pred = np.asarray([columns["prediction"][i] == positive for i in pick], dtype=bool)
    ref = np.asarray([columns["reference"][i] == positive for i in pick], dtype=bool)
    groups = np.asarray([str(columns["group"][i]) for i in pick], dtype=object)
    members = {g: np.flatnonzero(groups == g) for g in sorted(set(groups.tolist()))}
    return _Data(pred, ref, members, dropped)


def _undefined_in(rates: dict[str, float], metric: str) -> list[str]:
    return [r for r in RATES_OF[metric] if rates[r] != rates[r]]


def _groups_for(
    rates: dict[str, dict[str, float]], metric: str, data: _Data
) -> tuple[list[str], list[str], str | None]:
    """The groups with every rate of the metric, a flag per group left out, and the reason
    the metric is undefined when fewer than two remain."""
    used = [g for g in rates if not _undefined_in(rates[g], metric)]
    out = {g: _undefined_in(rates[g], metric) for g in rates if g not in used}
    why = {g: ", ".join(f"{r} ({EMPTY_DENOMINATOR[r]})" for r in out[g]) for g in out}
    flags = [f"group {g!r} left out: no {why[g]}" for g in out] if len(used) >= 2 else []
    if len(used) >= 2:
        return used, flags, None
    if not rates:
        n_dropped = data.dropped["rows"]
        return (
            used,
            flags,
            (
                "no samples with a prediction, a reference and a group"
                + (f" ({n_dropped} dropped for a missing value)" if n_dropped else "")
            ),
        )
    if len(rates) == 1:
        return used, flags, f"one group ({next(iter(rates))!r}): a gap needs at least two"
    detail = "; ".join(f"group {g!r} has no {why[g]}" for g in out)
    return used, flags, f"fewer than two groups have a defined rate: {detail}"


def _resample_rates(data: _Data, n_resamples: int, seed: int) -> list[dict[str, dict[str, float]]]:
    """Every group's rates in each resample, drawn within each group (so no group is lost)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_resamples):
        draw = {g: rng.choice(i, size=i.size, replace=True) for g, i in data.members.items()}
        out.append({g: group_rates(data.pred[i], data.ref[i]) for g, i in draw.items()})
    return out


def _interval(
    result: FairnessResult,
    used: list[str],
    data: _Data,
    boots: list[dict[str, dict[str, float]]],
    confidence_level: float,
) -> None:
    """The percentile interval over resamples where every used group keeps its rate; never one
    that excludes the estimate, and none when a group of one cannot vary."""
    single = [g for g in used if data.members[g].size == 1]
    if single:
        result.ci_reason = (
            f"group {single[0]!r} has one sample: a bootstrap cannot vary its rate, "
            "so no interval is given"
        )
        return
    values = np.asarray([gaps({g: b[g] for g in used}, result.metric) for b in boots])
    defined = values[~np.isnan(values)]
    if defined.size < values.size:
        result.flags.append(
            f"{values.size - defined.size} of {values.size} resamples left a group's rate "
            "undefined and are not in the interval"
        )
    if not defined.size:
        result.ci_reason = "every resample left a group's rate undefined"
        return
    tail = (1 - confidence_level) / 2
    low, high = float(np.quantile(defined, tail)), float(np.quantile(defined, 1 - tail))
    if not low <= result.gap <= high:
        result.flags.append(
            f"the percentile interval [{low:.4g}, {high:.4g}] did not hold the estimate "
            f"{result.gap:.4g} (a largest-minus-smallest gap's bootstrap is biased); "
            "widened to hold it"
        )
        low, high = min(low, result.gap), max(high, result.gap)
    result.ci = (low, high)


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
    """One result per metric; see the module's docstring for what is undefined and why."""
    data = _clean(prediction, reference, group, positive)
    rates = {g: group_rates(data.pred[i], data.ref[i]) for g, i in data.members.items()}
    boots: list[dict[str, dict[str, float]]] | None = None
    n = int(data.pred.size)
    results = []
    for metric in metrics:
        used, flags, reason = _groups_for(rates, metric, data)
        by_group = {
            g: {k: rates[g][k] for k in RATES_OF[metric]} | {"n": int(data.members[g].size)}
            for g in rates
        }
        gap = gaps({g: rates[g] for g in used}, metric)
        result = FairnessResult(
            metric, gap, (NAN, NAN), threshold, by_group, reason, None, flags, n, data.dropped
        )
        if data.dropped["rows"]:
            result.flags.append(_dropped_flag(data.dropped))
        if reason is None:
            result.groups_of_one = [g for g in used if data.members[g].size == 1]
            result.flags += [_single_flag(g) for g in result.groups_of_one]
            boots = boots if boots is not None else _resample_rates(data, n_resamples, seed)
            _interval(result, used, data, boots, confidence_level)
        else:
            result.ci_reason = "the gap is undefined"
        results.append(result)
    return results


def _single_flag(group: str) -> str:
    """A gap against a group of one sample is flagged: its rate is 0 or 1 by construction."""
    return (
        f"group {group!r} has one sample: its rate can only be 0 or 1, so the gap against it "
        "is not evidence of a disparity (no interval)"
    )


def _dropped_flag(dropped: dict[str, int]) -> str:
    fields = ", ".join(f"{k} {v}" for k, v in dropped.items() if k != "rows" and v)
    return f"{dropped['rows']} rows dropped for a missing value ({fields})"
