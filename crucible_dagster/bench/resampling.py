"""Seeded bootstrap confidence intervals: percentile, basic and BCa, of a statistic of one or
more samples (a difference of means or medians by name, or any vectorized callable).

Indices are drawn in small blocks one block ahead in a helper thread while the current block
is gathered, so memory stays flat (a few blocks of n indices) whatever the number of resamples. The BCa
acceleration comes from the jackknife, in O(n) closed form for the mean and the variances
and by leave-one-out otherwise; with several samples it is the multi-sample jackknife (each
sample left out one observation at a time while the others stay whole; Efron & Tibshirani
eq. 15.36, as scipy implements it). z₀ uses scipy's mid-rank proportion.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from scipy import stats

from crucible_dagster.bench.data import (
    BenchDataError,
    as_sample,
    check_level,
    essentially_constant,
    overflow_reason,
    paired_differences,
)
from crucible_dagster.bench.result import NAN, TestResult, overflow_guarded

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
#: statistics of two samples, by name: the first sample's minus the second's
NAMED_TWO_SAMPLE = {
    "mean_difference": lambda a, b, axis=-1: np.mean(a, axis=axis) - np.mean(b, axis=axis),
    "median_difference": lambda a, b, axis=-1: np.median(a, axis=axis) - np.median(b, axis=axis),
}
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


def bca_acceleration(jackknife_values: Sequence[np.ndarray]) -> float:
    """BCa acceleration from the jackknife values of one or more samples: for each sample k,
    the statistic with its i-th observation left out and every other sample whole
    (Efron & Tibshirani eq. 15.36; scipy.stats.bootstrap's multi-sample form)."""
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


def _samples(data: Any) -> list[np.ndarray] | None:
    """The samples of a multi-sample call (a tuple, or a list of sequences), else None."""
    if isinstance(data, tuple) or (
        isinstance(data, list) and data and all(np.ndim(item) == 1 for item in data)
    ):
        return [as_sample(item, f"sample {i + 1}", 2) for i, item in enumerate(data)]
    return None


@overflow_guarded("bootstrap")
def bootstrap(
    data: Any,
    statistic: str | Statistic = "mean",
    *,
    confidence_level: float = 0.95,
    n_resamples: int = 10_000,
    methods: Sequence[str] = ("percentile", "basic", "BCa"),
    seed: int | None = None,
    paired: bool = False,
) -> TestResult:
    """Bootstrap CIs of a statistic: of one sample (``bootstrap(x, "mean")``) or of several
    (``bootstrap((x, y), "mean_difference")``, or a callable ``f(*samples, axis=-1)``).

    Several samples are resampled each on its own, or with the same indices when ``paired``.
    Seed it (the experiment seed) to reproduce intervals. The result carries the BCa
    acceleration (``jackknife_acceleration``) and bias correction (``bias_correction_z0``).
    """
    samples = _samples(data)
    if samples is None:
        return _bootstrap_one(
            as_sample(data, "x", 2), statistic, confidence_level, n_resamples, methods, seed
        )
    return _bootstrap_many(samples, statistic, confidence_level, n_resamples, methods, seed, paired)


def _check(confidence_level: float, n_resamples: int, methods: Sequence[str]) -> list[str]:
    check_level(confidence_level)
    if n_resamples < 100:
        raise BenchDataError(f"n_resamples must be at least 100, got {n_resamples}")
    return _methods(methods)


def _result(
    theta_hat: float,
    sizes: tuple[int, ...],
    chosen: list[str],
    confidence_level: float,
    name: str,
    n_resamples: int,
    seed: int | None,
) -> TestResult:
    result = TestResult(
        test="bootstrap",
        estimate=theta_hat,
        confidence_level=confidence_level,
        n=sizes,
        method=", ".join(chosen),
    )
    result.extra = {
        "theta_hat": theta_hat,
        "statistic_name": name,
        "n_resamples": n_resamples,
        "seed": seed,
    }
    return result


def _finish(
    result: TestResult,
    replicates: np.ndarray,
    theta_hat: float,
    chosen: list[str],
    confidence_level: float,
    accel: float,
) -> TestResult:
    if not (math.isfinite(theta_hat) and np.isfinite(replicates).all()):
        return _degenerate(result, chosen, overflow_reason("a resampled statistic"))
    result.extra["jackknife_acceleration"] = accel
    result.extra.update(_intervals(theta_hat, replicates, 1 - confidence_level, chosen, accel))
    first = chosen[0].lower()
    result.ci = (result.extra[f"{first}_ci_low"], result.extra[f"{first}_ci_high"])
    result.extra["standard_error"] = float(replicates.std(ddof=1))
    return result


def _degenerate(result: TestResult, chosen: list[str], reason: str) -> TestResult:
    result.reason = reason
    for method in chosen:
        result.extra[f"{method.lower()}_ci_low"] = result.extra[f"{method.lower()}_ci_high"] = NAN
    result.extra["jackknife_acceleration"] = NAN
    result.ci = (NAN, NAN)
    return result


def _constant(values: np.ndarray) -> bool:
    return essentially_constant(float(np.ptp(values)), float(np.max(np.abs(values))))


def _bootstrap_one(
    data: np.ndarray,
    statistic: str | Statistic,
    confidence_level: float,
    n_resamples: int,
    methods: Sequence[str],
    seed: int | None,
) -> TestResult:
    chosen = _check(confidence_level, n_resamples, methods)
    name, fn = _statistic(statistic)
    rng = np.random.default_rng(seed)
    theta_hat = float(fn(data))
    result = _result(theta_hat, (data.size,), chosen, confidence_level, name, n_resamples, seed)
    if _constant(data):
        reason = "constant data: every resample gives the same value, the interval is degenerate"
        return _degenerate(result, chosen, reason)
    replicates = resample_statistic(data, name, fn, n_resamples, rng)
    accel = bca_acceleration([jackknife(data, name, fn)]) if "BCa" in chosen else NAN
    return _finish(result, replicates, theta_hat, chosen, confidence_level, accel)


def _many_statistic(statistic: str | Statistic, k: int) -> tuple[str, Statistic]:
    if callable(statistic):
        return getattr(statistic, "__name__", "statistic"), statistic
    if statistic not in NAMED_TWO_SAMPLE or k != 2:
        raise BenchDataError(
            f"unknown statistic {statistic!r} for {k} samples; expected one of "
            f"{', '.join(NAMED_TWO_SAMPLE)} (two samples) or a function f(*samples, axis=-1)"
        )
    return statistic, NAMED_TWO_SAMPLE[statistic]


def multi_sample_jackknife(
    samples: Sequence[np.ndarray], fn: Statistic, name: str = ""
) -> list[np.ndarray]:
    """For each sample, the statistic with one of its observations left out at a time while
    the other samples stay whole (what ``bca_acceleration`` takes). Closed form for the
    difference of means; otherwise in blocks of leave-one-out rows (flat memory)."""
    if name == "mean_difference":
        first, second = samples
        return [jackknife(first, "mean", NAMED["mean"]), -jackknife(second, "mean", NAMED["mean"])]
    values = []
    for k, sample in enumerate(samples):
        n = sample.size
        if n > 20_000:
            raise BenchDataError(
                f"BCa needs n leave-one-out evaluations; sample {k + 1} has n = {n}, use percentile"
            )
        rows = max(1, _CHUNK_ELEMENTS // max(n, 1))
        out = np.empty(n)
        for start in range(0, n, rows):
            stop = min(n, start + rows)
            # row i of the block is the sample without observation start + i
            columns = np.arange(n - 1)
            left_out = sample[columns + (columns >= np.arange(start, stop)[:, None])]
            others = [np.broadcast_to(s, (stop - start, s.size)) for s in samples]
            others[k] = left_out
            out[start:stop] = fn(*others, axis=-1)
        values.append(out)
    return values


def _bootstrap_many(
    samples: list[np.ndarray],
    statistic: str | Statistic,
    confidence_level: float,
    n_resamples: int,
    methods: Sequence[str],
    seed: int | None,
    paired: bool,
) -> TestResult:
    chosen = _check(confidence_level, n_resamples, methods)
    name, fn = _many_statistic(statistic, len(samples))
    if paired and len({s.size for s in samples}) != 1:
        raise BenchDataError(
            f"a paired bootstrap needs samples of one length, got {[s.size for s in samples]}"
        )
    rng = np.random.default_rng(seed)
    theta_hat = float(fn(*samples, axis=-1))
    sizes = tuple(s.size for s in samples)
    result = _result(theta_hat, sizes, chosen, confidence_level, name, n_resamples, seed)
    result.extra["design"] = "paired" if paired else "independent"
    if all(_constant(s) for s in samples):
        return _degenerate(result, chosen, "every sample is constant: the interval is degenerate")
    replicates = _resample_many(samples, fn, n_resamples, rng, paired)
    if paired:
        # pairs are the units: leave one pair out of every sample at once
        n = samples[0].size
        keep = ~np.eye(n, dtype=bool)
        jack = [np.array([fn(*(s[keep[i]] for s in samples), axis=-1) for i in range(n)])]
    else:
        jack = multi_sample_jackknife(samples, fn, name) if "BCa" in chosen else []
    accel = bca_acceleration(jack) if "BCa" in chosen else NAN
    return _finish(result, replicates, theta_hat, chosen, confidence_level, accel)


def _resample_many(
    samples: list[np.ndarray],
    fn: Statistic,
    n_resamples: int,
    rng: np.random.Generator,
    paired: bool,
) -> np.ndarray:
    """Replicates in blocks (flat memory): each sample's own indices, or one set when paired."""
    largest = max(s.size for s in samples)
    rows = max(1, _CHUNK_ELEMENTS // (largest * len(samples)))
    out = np.empty(n_resamples)
    for start in range(0, n_resamples, rows):
        count = min(rows, n_resamples - start)
        if paired:
            indices = rng.integers(0, samples[0].size, (count, samples[0].size))
            drawn = [np.take(s, indices) for s in samples]
        else:
            drawn = [np.take(s, rng.integers(0, s.size, (count, s.size))) for s in samples]
        out[start : start + count] = fn(*drawn, axis=-1)
    return out


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
        # one sample of differences: the closed-form jackknife and the fast mean path
        result = bootstrap(
            paired_differences(a, b),
            "mean",
            confidence_level=confidence_level,
            n_resamples=n_resamples,
            methods=methods,
            seed=seed,
        )
        result.extra["design"] = "paired"
        return result
    return bootstrap(
        (a, b),
        "mean_difference",
        confidence_level=confidence_level,
        n_resamples=n_resamples,
        methods=methods,
        seed=seed,
    )
