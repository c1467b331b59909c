"""Seeded bootstrap confidence intervals: percentile, basic and BCa, for one sample or a difference.

Indices are drawn in small blocks one block ahead in a helper thread while the current block
is gathered, so memory stays flat (a few blocks of n indices) whatever the number of resamples. The BCa
acceleration comes from the jackknife, in O(n) closed form for the mean and the variances
and by leave-one-out otherwise; z₀ uses scipy's mid-rank proportion.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from scipy import stats

from crucible_dagster.bench.data import BenchDataError, as_sample, check_level
from crucible_dagster.bench.result import NAN, TestResult

Statistic = Callable[..., Any]
METHODS = ("percentile", "basic", "BCa")
NAMED = {
    "mean": lambda a, axis=-1: np.mean(a, axis=axis),
    "median": lambda a, axis=-1: np.median(a, axis=axis),
    "variance": lambda a, axis=-1: np.var(a, axis=axis, ddof=1),
    "variance_plugin_ddof0": lambda a, axis=-1: np.var(a, axis=axis, ddof=0),
    "std": lambda a, axis=-1: np.std(a, axis=axis, ddof=1),
}
NAMED["variance_ddof0"] = NAMED["variance_plugin_ddof0"]
_CHUNK_ELEMENTS = 1 << 21


def _statistic(statistic: str | Statistic) -> tuple[str, Statistic]:
    if callable(statistic):
        return getattr(statistic, "__name__", "statistic"), statistic
    if statistic not in NAMED:
        raise BenchDataError(
            f"unknown statistic {statistic!r}; expected one of {', '.join(sorted(NAMED))} or a function"
        )
    return statistic, NAMED[statistic]


def _index_blocks(rng: np.random.Generator, n: int, total: int, rows: int) -> Iterator[np.ndarray]:
    """Blocks of resampling indices, drawn one block ahead in a helper thread.

    numpy releases the GIL while it draws, so drawing block i+1 overlaps the work on
    block i; the indices come from the one seeded stream in order, so the result is
    identical to drawing them sequentially.
    """
    starts = list(range(0, total, rows))
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(rng.integers, 0, n, (min(rows, total), n))
        for position, _start in enumerate(starts):
            block = future.result()
            if position + 1 < len(starts):
                following = starts[position + 1]
                future = pool.submit(rng.integers, 0, n, (min(rows, total - following), n))
            yield block


def resample_statistic(
    data: np.ndarray, name: str, fn: Statistic, n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """``n_resamples`` bootstrap replicates of the statistic."""
    n = data.size
    out = np.empty(n_resamples)
    rows = (
        max(1, min(8, _CHUNK_ELEMENTS // max(n, 1)))
        if name == "mean"
        else max(1, _CHUNK_ELEMENTS // max(n, 1))
    )
    position = 0
    if name == "mean":
        buffer = np.empty(n)
        for block in _index_blocks(rng, n, n_resamples, rows):
            for indices in block:  # one row at a time keeps the gather in cache
                np.take(data, indices, out=buffer, mode="wrap")
                out[position] = buffer.sum() / n
                position += 1
        return out
    for block in _index_blocks(rng, n, n_resamples, rows):
        out[position : position + block.shape[0]] = fn(np.take(data, block, mode="wrap"), axis=-1)
        position += block.shape[0]
    return out


def jackknife(data: np.ndarray, name: str, fn: Statistic) -> np.ndarray:
    """Leave-one-out values of the statistic (closed form where one exists)."""
    n = data.size
    if name == "mean":
        return (data.sum() - data) / (n - 1)
    if name in ("variance", "variance_plugin_ddof0", "variance_ddof0", "std"):
        centred = data - data.mean()
        s1, s2 = centred.sum(), np.sum(centred**2)
        m = n - 1
        mean_without = (s1 - centred) / m
        var0 = (s2 - centred**2) / m - mean_without**2
        if name in ("variance_plugin_ddof0", "variance_ddof0"):
            return var0
        var1 = var0 * m / (m - 1)
        return np.sqrt(var1) if name == "std" else var1
    if n > 20_000:
        raise BenchDataError(
            f"BCa for a custom statistic needs n leave-one-out evaluations; n = {n} is too many, use percentile"
        )
    mask = ~np.eye(n, dtype=bool)
    return np.array([fn(data[mask[i]]) for i in range(n)], dtype=float)


def acceleration(jackknife_values: Sequence[np.ndarray]) -> float:
    """BCa acceleration from jackknife values of one or more samples (Efron & Tibshirani eq. 15.36)."""
    numerator = denominator = 0.0
    for values in jackknife_values:
        n = values.size
        u = (n - 1) * (values.mean() - values)
        numerator += float(np.sum(u**3)) / n**3
        denominator += float(np.sum(u**2)) / n**2
    if denominator == 0:
        return NAN
    return numerator / (6 * denominator**1.5)


def _intervals(
    theta_hat: float, replicates: np.ndarray, alpha: float, methods: Sequence[str], accel: float
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    low_q, high_q = alpha / 2, 1 - alpha / 2
    if "percentile" in methods or "basic" in methods:
        p_low, p_high = np.quantile(replicates, [low_q, high_q])
        if "percentile" in methods:
            out["percentile_ci_low"], out["percentile_ci_high"] = float(p_low), float(p_high)
        if "basic" in methods:
            out["basic_ci_low"], out["basic_ci_high"] = (
                float(2 * theta_hat - p_high),
                float(2 * theta_hat - p_low),
            )
    if "BCa" in methods:
        below = np.count_nonzero(replicates < theta_hat)
        at_or_below = np.count_nonzero(replicates <= theta_hat)
        proportion = (below + at_or_below) / (2 * replicates.size)
        z0 = float(stats.norm.ppf(proportion)) if 0 < proportion < 1 else NAN
        out["bias_correction_z0"] = z0
        if math.isfinite(z0) and math.isfinite(accel):
            bounds = []
            for q in (low_q, high_q):
                z = z0 + stats.norm.ppf(q)
                bounds.append(float(stats.norm.cdf(z0 + z / (1 - accel * z))))
            b_low, b_high = np.quantile(replicates, bounds)
            out["bca_ci_low"], out["bca_ci_high"] = float(b_low), float(b_high)
        else:
            out["bca_ci_low"] = out["bca_ci_high"] = NAN
    return out


def _methods(methods: Sequence[str]) -> list[str]:
    normalised = ["BCa" if m.lower() == "bca" else m.lower() for m in methods]
    unknown = [m for m in normalised if m not in METHODS]
    if unknown:
        raise BenchDataError(
            f"unknown bootstrap method(s) {unknown}; expected {', '.join(METHODS)}"
        )
    return normalised


def bootstrap(
    x: Any,
    statistic: str | Statistic = "mean",
    *,
    confidence_level: float = 0.95,
    n_resamples: int = 10_000,
    methods: Sequence[str] = ("percentile", "basic", "BCa"),
    seed: int | None = None,
) -> TestResult:
    """Bootstrap CIs of a statistic of one sample. Seed it (the experiment seed) to reproduce intervals."""
    data = as_sample(x, "x", 2)
    check_level(confidence_level)
    if n_resamples < 100:
        raise BenchDataError(f"n_resamples must be at least 100, got {n_resamples}")
    chosen = _methods(methods)
    name, fn = _statistic(statistic)
    rng = np.random.default_rng(seed)
    theta_hat = float(fn(data))
    result = TestResult(
        test="bootstrap",
        estimate=theta_hat,
        confidence_level=confidence_level,
        n=(data.size,),
        method=", ".join(chosen),
    )
    result.extra = {
        "theta_hat": theta_hat,
        "statistic_name": name,
        "n_resamples": n_resamples,
        "seed": seed,
    }
    if np.all(data == data[0]):
        result.reason = (
            "constant data: every resample gives the same value, the interval is degenerate"
        )
        for method in chosen:
            result.extra[f"{method.lower()}_ci_low"] = result.extra[f"{method.lower()}_ci_high"] = (
                NAN
            )
        result.extra["jackknife_acceleration"] = NAN
        return result
    replicates = resample_statistic(data, name, fn, n_resamples, rng)
    accel = acceleration([jackknife(data, name, fn)]) if "BCa" in chosen else NAN
    result.extra["jackknife_acceleration"] = accel
    result.extra.update(_intervals(theta_hat, replicates, 1 - confidence_level, chosen, accel))
    first = chosen[0].lower()
    result.ci = (result.extra[f"{first}_ci_low"], result.extra[f"{first}_ci_high"])
    result.extra["standard_error"] = float(replicates.std(ddof=1))
    return result


def bootstrap_difference(
    x: Any,
    y: Any,
    *,
    paired: bool = False,
    confidence_level: float = 0.95,
    n_resamples: int = 10_000,
    methods: Sequence[str] = ("percentile", "BCa"),
    seed: int | None = None,
) -> TestResult:
    """CI of mean(x) − mean(y): resampling pairs when ``paired``, else each group on its own."""
    a, b = as_sample(x, "x", 2), as_sample(y, "y", 2)
    if paired:
        if a.size != b.size:
            raise BenchDataError(f"paired bootstrap needs equal lengths, got {a.size} and {b.size}")
        result = bootstrap(
            a - b,
            "mean",
            confidence_level=confidence_level,
            n_resamples=n_resamples,
            methods=methods,
            seed=seed,
        )
        result.test = "bootstrap"
        result.extra["design"] = "paired"
        return result
    check_level(confidence_level)
    chosen = _methods(methods)
    rng = np.random.default_rng(seed)
    theta_hat = float(a.mean() - b.mean())
    replicates = resample_statistic(
        a, "mean", NAMED["mean"], n_resamples, rng
    ) - resample_statistic(b, "mean", NAMED["mean"], n_resamples, rng)
    accel = (
        acceleration([jackknife(a, "mean", NAMED["mean"]), -jackknife(b, "mean", NAMED["mean"])])
        if "BCa" in chosen
        else NAN
    )
    result = TestResult(
        test="bootstrap",
        estimate=theta_hat,
        confidence_level=confidence_level,
        n=(a.size, b.size),
        method=", ".join(chosen),
    )
    result.extra = {
        "theta_hat": theta_hat,
        "n_resamples": n_resamples,
        "seed": seed,
        "design": "independent",
        "jackknife_acceleration": accel,
    }
    if np.ptp(replicates) == 0:
        result.reason = "both groups are constant: the interval is degenerate"
        result.ci = (NAN, NAN)
        return result
    result.extra.update(_intervals(theta_hat, replicates, 1 - confidence_level, chosen, accel))
    first = chosen[0].lower()
    result.ci = (result.extra[f"{first}_ci_low"], result.extra[f"{first}_ci_high"])
    return result
