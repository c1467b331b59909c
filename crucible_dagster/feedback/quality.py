"""Quality from user signals, per model version and day: the share of thumbs up and the
correction rate with Wilson intervals (``scipy.stats.binomtest``), the mean rating with a
bootstrap interval (``scipy.stats.bootstrap``), and each day against the one before it
(Fisher's exact test for the shares, the bench's Mann-Whitney U for ratings).

A figure that cannot be had (no events of its kind, one rating) is None with the reason, never
a number that looks real.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

NO_VERSION = "(none)"
NO_DAY = "(undated)"


def wilson(successes: int, trials: int, level: float) -> dict[str, Any]:
    """A proportion with its Wilson score interval; undefined with the reason for no trials."""
    from scipy.stats import binomtest

    if trials == 0:
        return {"n": 0, "successes": 0, "share": None, "low": None, "high": None,
                "reason": "no events"}  # fmt: skip
    interval = binomtest(successes, trials).proportion_ci(level, method="wilson")
    return {
        "n": trials,
        "successes": successes,
        "share": successes / trials,
        "low": float(interval.low),
        "high": float(interval.high),
    }


def mean_interval(values: Sequence[float], level: float, seed: int) -> dict[str, Any]:
    """A mean with its percentile bootstrap interval (9999 resamples, seeded)."""
    import numpy as np
    from scipy.stats import bootstrap

    data = np.asarray(values, dtype=float)
    if len(data) == 0:
        return {"n": 0, "mean": None, "low": None, "high": None, "reason": "no ratings"}
    with np.errstate(all="ignore"):  # an overflow is said below, not warned on the terminal
        mean = float(data.mean())
        spread = float(np.ptp(data))
    if not (np.isfinite(mean) and np.isfinite(spread)):
        return {"n": len(data), "mean": None, "low": None, "high": None,
                "reason": "ratings too large to average in floating point"}  # fmt: skip
    if len(data) == 1:
        return {"n": 1, "mean": mean, "low": None, "high": None, "reason": "one rating"}
    if np.all(data == data[0]):  # every resample has the same mean: the interval is a point
        return {"n": len(data), "mean": mean, "low": mean, "high": mean,
                "reason": "all ratings equal"}  # fmt: skip
    found = bootstrap(
        (data,), np.mean, confidence_level=level, n_resamples=9999, method="percentile",
        rng=np.random.default_rng(seed),
    )  # fmt: skip
    interval = found.confidence_interval
    return {"n": len(data), "mean": mean, "low": float(interval.low), "high": float(interval.high)}


def quality_by_period(
    events: Sequence[dict[str, Any]], level: float = 0.95, seed: int = 0
) -> list[dict[str, Any]]:
    """One row per (model version, day), in order, each compared with the version's day before."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        groups[(event.get("model_version") or NO_VERSION, event.get("day") or NO_DAY)].append(event)
    rows: list[dict[str, Any]] = []
    previous: dict[str, dict[str, Any]] = {}
    for (version, day), group in sorted(groups.items()):
        thumbs = [e["feedback_value"] for e in group if e["feedback_type"] == "thumbs"]
        ratings = [float(e["feedback_value"]) for e in group if e["feedback_type"] == "rating"]
        corrections = sum(1 for e in group if e["feedback_type"] == "correction")
        row = {
            "model_version": version,
            "day": day,
            "events": len(group),
            "thumbs_up": wilson(sum(1 for t in thumbs if t), len(thumbs), level),
            "rating": mean_interval(ratings, level, seed),
            "correction_rate": wilson(corrections, len(group), level),
            "_ratings": ratings,
        }
        if day != NO_DAY and version in previous:
            row["against_previous"] = _compared(previous[version], row)
        if day != NO_DAY:
            previous[version] = row
        rows.append(row)
    return [{k: v for k, v in row.items() if k != "_ratings"} for row in rows]


def _compared(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """This period against the version's previous one: a difference and a two-sided p-value per
    signal, or the reason there is none."""
    compared: dict[str, Any] = {"previous_day": before["day"]}
    for name in ("thumbs_up", "correction_rate"):
        compared[name] = _shares_compared(before[name], after[name])
    compared["rating"] = _ratings_compared(before, after)
    return compared


def _shares_compared(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    from scipy.stats import fisher_exact

    if not before["n"] or not after["n"]:
        return {"difference": None, "p_value": None, "reason": "no events in one period"}
    yes = [after["successes"], before["successes"]]
    table = [yes, [after["n"] - yes[0], before["n"] - yes[1]]]
    p_value = float(fisher_exact(table).pvalue)
    return {"difference": after["share"] - before["share"], "p_value": p_value,
            "test": "fisher_exact"}  # fmt: skip


def _ratings_compared(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The two periods' ratings: the difference of the means each row already holds, and the
    bench's Mann-Whitney U on the ratings themselves."""
    from crucible_dagster.bench.nonparametric import mann_whitney

    old, new = before["rating"], after["rating"]
    if not old["n"] or not new["n"]:
        return {"difference": None, "p_value": None, "reason": "no ratings in one period"}
    difference = None if old["mean"] is None or new["mean"] is None else new["mean"] - old["mean"]
    if difference is None or not math.isfinite(difference):
        return {"difference": None, "p_value": None,
                "reason": "ratings too large to average in floating point"}  # fmt: skip
    if len(set(before["_ratings"]) | set(after["_ratings"])) == 1:
        return {"difference": 0.0, "p_value": None, "reason": "all ratings equal"}
    result = mann_whitney(after["_ratings"], before["_ratings"])
    return {"difference": difference, "p_value": result.p_value, "test": "mann_whitney"}
