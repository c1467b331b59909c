"""Request metrics from telemetry events: latency, cost, reliability and tokens, by variant,
model or any event field, over a time window, and two sets of requests compared.

Events kept at a ``sampling_rate`` below 1 each stand for ``1 / rate`` requests in counts,
costs and tokens; latency quantiles are of the kept events (a uniform sample keeps them
unbiased). Quantiles are numpy's linear interpolation (R's type 7, the default of
``quantile()`` in R).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crucible_dagster.telemetry.events import TelemetryEvent, read_events

if TYPE_CHECKING:
    import pandas as pd

REQUEST = "request"
QUANTILES = (50, 90, 95, 99)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class TelemetryQueryError(ValueError):
    """A window or grouping that cannot be applied: the message names the option."""


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``1h``, ``2d`` as a time span."""
    found = _DURATION.match(text)
    try:
        if found and float(found.group(1)) > 0:
            return timedelta(**{_UNITS[found.group(2)]: float(found.group(1))})
    except OverflowError:
        pass
    raise TelemetryQueryError(
        f"--last: expected a positive duration such as 90s, 15m, 1h or 2d (at most "
        f"{timedelta.max.days} days), got {text!r}"
    )


def events_frame(paths: Iterable[str | Path]) -> tuple[pd.DataFrame, list[str]]:
    """Every event of the given ``telemetry.jsonl`` files as one table (one column per schema
    field, ``timestamp`` as UTC times, ``file`` the file it came from), and each line that was
    not an event (torn, foreign, malformed) as a located problem."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for path in paths:
        events, found = read_events(path)
        problems += found
        rows += [{**e.model_dump(), "file": str(path)} for e in events]
    columns = [*TelemetryEvent.model_fields, "file"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True), problems


def within(
    frame: pd.DataFrame,
    *,
    last: timedelta | None = None,
    last_n: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    now: datetime | None = None,
) -> pd.DataFrame:
    """The events in the window: after ``since``, before ``until``, within ``last`` of ``now``
    (default: the newest event, so a finished run's window is its own last hour), then the
    newest ``last_n`` requests."""
    import pandas as pd

    if last_n is not None and last_n < 1:
        raise TelemetryQueryError(f"--last-n: expected a positive count, got {last_n}")
    times = frame["timestamp"]
    keep = pd.Series(True, index=frame.index)
    for bound, name in ((since, "--since"), (until, "--until"), (now, "now")):
        if bound is not None and bound.tzinfo is None:
            raise TelemetryQueryError(f"{name}: expected a time with its UTC offset, got {bound}")
    if since is not None and until is not None and since > until:
        raise TelemetryQueryError(f"--since: expected a time before --until ({until}), got {since}")
    if since is not None:
        keep &= times >= pd.Timestamp(since)
    if until is not None:
        keep &= times <= pd.Timestamp(until)
    if last is not None and len(frame):
        end = pd.Timestamp(now) if now is not None else times.max()
        keep &= times >= end - pd.Timedelta(last)
    chosen = frame[keep]
    if last_n is not None:
        requests = chosen[chosen["event"] == REQUEST].tail(last_n)
        chosen = pd.concat([chosen[chosen["event"] != REQUEST], requests]).sort_index()
    return chosen


def request_metrics(frame: pd.DataFrame, by: Sequence[str] = ("variant",)) -> pd.DataFrame:
    """One row per group of the requests in ``frame``: counts, success and failure rates,
    latency (count, mean, median, std, p50/p90/p95/p99), cost (total, per request, per 1000)
    and tokens."""
    import pandas as pd

    unknown = [b for b in by if b not in TelemetryEvent.model_fields]
    if unknown:
        raise TelemetryQueryError(
            f"--by: expected event fields (variant, model, provider, stage, ...), got {unknown}"
        )
    requests = frame[frame["event"] == REQUEST]
    if requests.empty:
        return pd.DataFrame(columns=[*by, "requests"])
    groups = requests.groupby(list(by), dropna=False, sort=True) if by else [((), requests)]
    rows = []
    for key, group in groups:
        keys = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, keys, strict=True)), **_group_metrics(group)})
    return pd.DataFrame(rows)


def _group_metrics(group: pd.DataFrame) -> dict[str, Any]:
    import numpy as np

    weight = 1.0 / group["sampling_rate"].fillna(1.0).astype(float)
    count = float(weight.sum())
    success = group["success"].fillna(False).astype(bool)
    latency = group["latency_ms"].dropna().astype(float).to_numpy()
    priced = group["cost"].notna().any()  # no event priced: the cost is unknown, not 0
    cost = float((group["cost"].fillna(0.0).astype(float) * weight).sum()) if priced else None
    prompt = float((group["prompt_tokens"].fillna(0).astype(float) * weight).sum())
    completion = float((group["completion_tokens"].fillna(0).astype(float) * weight).sum())
    row: dict[str, Any] = {
        "requests": count,
        "events": len(group),
        "success_rate": float((success * weight).sum() / count),
        "failure_rate": float(((~success) * weight).sum() / count),
        "cached": float((group["cached"].fillna(False).astype(bool) * weight).sum()),
        "latency_count": len(latency),
        "latency_mean_ms": float(latency.mean()) if len(latency) else None,
        "latency_median_ms": float(np.median(latency)) if len(latency) else None,
        "latency_std_ms": float(latency.std(ddof=1)) if len(latency) > 1 else None,
    }
    for q in QUANTILES:
        row[f"latency_p{q}_ms"] = float(np.percentile(latency, q)) if len(latency) else None
    row.update(
        {
            "cost_total": cost,
            "cost_per_request": cost / count if cost is not None else None,
            "cost_per_1k_requests": 1000 * cost / count if cost is not None else None,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "tokens_per_request": (prompt + completion) / count,
        }
    )
    return row


def compare_requests(
    first: pd.DataFrame, second: pd.DataFrame, metric: str = "latency_ms"
) -> dict[str, Any]:
    """``metric`` of two sets of requests: paired on the samples both answered (Wilcoxon
    signed-rank on the differences), else as two samples (Mann-Whitney U), two-sided."""
    from scipy import stats

    if metric not in ("latency_ms", "cost", "prompt_tokens", "completion_tokens"):
        raise TelemetryQueryError(f"--metric: expected latency_ms, cost or tokens, got {metric!r}")
    a = first[first["event"] == REQUEST].dropna(subset=[metric])
    b = second[second["event"] == REQUEST].dropna(subset=[metric])
    per_a = a.groupby("sample_id")[metric].mean()
    per_b = b.groupby("sample_id")[metric].mean()
    shared = per_a.index.intersection(per_b.index)
    result: dict[str, Any] = {
        "metric": metric,
        "n_first": len(a),
        "n_second": len(b),
        "median_first": float(a[metric].median()) if len(a) else None,
        "median_second": float(b[metric].median()) if len(b) else None,
    }
    if len(shared) >= 2:
        differences = per_a[shared].to_numpy(float) - per_b[shared].to_numpy(float)
        if (differences == 0).all():
            return {
                **result,
                "test": "none (every paired difference is 0)",
                "n_paired": len(shared),
            }
        test = stats.wilcoxon(per_a[shared].to_numpy(float), per_b[shared].to_numpy(float))
        return {
            **result,
            "test": "wilcoxon_signed_rank",
            "n_paired": len(shared),
            "median_difference": float(stats.scoreatpercentile(differences, 50)),
            "statistic": float(test.statistic),
            "p_value": float(test.pvalue),
        }
    if len(a) < 1 or len(b) < 1:
        return {**result, "test": "none (a side has no requests)"}
    test = stats.mannwhitneyu(a[metric].to_numpy(float), b[metric].to_numpy(float))
    return {
        **result,
        "test": "mann_whitney_u",
        "statistic": float(test.statistic),
        "p_value": float(test.pvalue),
    }
