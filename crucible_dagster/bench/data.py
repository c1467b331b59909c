"""Input checks shared by every test: numeric, finite, enough observations."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

ALTERNATIVES = ("two-sided", "less", "greater")
EPSILON = float(np.finfo(np.float64).eps)


def essentially_constant(spread: float, *centres: float) -> bool:
    """R's rule (``t.test``: "data are essentially constant"): a spread (a standard error or
    SD) below 10·ε·max|centre| is floating-point noise, not variation. ``[0.01] * 10`` has a
    sample variance of about 3e-36, not 0; dividing by it gives t ≈ 1e16."""
    scale = max((abs(c) for c in centres), default=0.0)
    return not spread > 10 * EPSILON * scale  # also true for a NaN spread


def constant_reason(what: str) -> str:
    return (
        f"{what} are essentially constant (their spread is below 10·ε times their magnitude, "
        "only floating-point noise): the statistic is undefined"
    )


#: what an undefined result says when a value on the way overflowed (finite data near ±1e308,
#: or whose squares pass it): never the 0.0 that dividing by an infinite spread gives
OVERFLOW = "undefined (values too large to compute: overflow)"


def overflow_reason(what: str) -> str:
    return f"{OVERFLOW}: {what} is not a finite number"


def spread_problem(
    spread: float, centres: Sequence[float], what: str, also: Sequence[float] = ()
) -> str | None:
    """Why a statistic that divides by ``spread`` is undefined, or None: a spread, centre or
    estimate (``also``) that overflowed, or a spread that is only floating-point noise."""
    if not all(math.isfinite(v) for v in (*centres, *also)):
        return overflow_reason(f"a mean or difference of {what}")
    if math.isinf(spread):
        return overflow_reason(f"the spread of {what}")
    if essentially_constant(spread, *centres):
        return constant_reason(what)
    return None


#: paired differences within this many ε of their pair's larger value are floating-point noise
PAIR_TOLERANCE_EPS = 8


def paired_differences(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a − b`` with floating-point noise removed before any paired test ranks or divides.

    A difference within 8·ε·max(|aᵢ|, |bᵢ|) of zero is zero (a tie: ``b = a + 1e-15`` is no
    difference), and differences within that tolerance of each other are equal (a constant
    shift whose last bits differ is constant). Neighbours in sorted order are merged, each run
    taking its middle value; a run that reaches zero is zero.
    """
    d = a - b
    with np.errstate(over="ignore", invalid="ignore"):
        tolerance = PAIR_TOLERANCE_EPS * EPSILON * np.maximum(np.abs(a), np.abs(b))
    if not np.isfinite(d).all() or not np.isfinite(tolerance).all():
        return d  # an overflowed difference: the test says so
    d = np.where(np.abs(d) <= tolerance, 0.0, d)
    order = np.argsort(d, kind="stable")
    out = d.copy()
    start = 0
    for i in range(1, order.size + 1):
        if i < order.size and d[order[i]] - d[order[i - 1]] <= max(
            tolerance[order[i]], tolerance[order[i - 1]]
        ):
            continue
        run = order[start:i]
        out[run] = 0.0 if np.any(d[run] == 0) else d[run[(run.size - 1) // 2]]
        start = i
    return out


class BenchDataError(ValueError):
    """The data cannot be tested as given; the message says what is wrong and with which group."""


def as_sample(values: Any, name: str = "sample", minimum: int = 1) -> np.ndarray:
    """A 1-D float64 array of finite values, or a BenchDataError naming ``name``."""
    if isinstance(values, str | bytes):
        raise BenchDataError(f"{name}: expected a list of numbers, got a string {values!r:.40}")
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        bad = next((v for v in np.asarray(values, dtype=object).ravel() if not _is_number(v)), None)
        raise BenchDataError(f"{name}: expected numbers, got non-numeric value {bad!r}") from None
    if array.ndim != 1:
        array = array.ravel() if array.ndim == 0 else array
        if array.ndim != 1:
            raise BenchDataError(
                f"{name}: expected a flat list of numbers, got shape {array.shape}"
            )
    if not np.isfinite(array).all():
        bad_count = int((~np.isfinite(array)).sum())
        raise BenchDataError(
            f"{name}: {bad_count} value(s) are NaN or infinite; drop or impute them before testing"
        )
    if array.size < minimum:
        raise BenchDataError(f"{name}: needs at least {minimum} observation(s), got {array.size}")
    return array


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, str | bytes)


def as_groups(
    groups: Sequence[Any],
    minimum_groups: int = 2,
    minimum_size: int = 1,
    names: Sequence[str] | None = None,
) -> list[np.ndarray]:
    if len(groups) < minimum_groups:
        raise BenchDataError(f"needs at least {minimum_groups} groups, got {len(groups)}")
    labels = list(names) if names else [f"group {i + 1}" for i in range(len(groups))]
    return [as_sample(g, labels[i], minimum_size) for i, g in enumerate(groups)]


def as_pairs(x: Any, y: Any, minimum: int = 2) -> tuple[np.ndarray, np.ndarray]:
    a = as_sample(x, "x", minimum)
    b = as_sample(y, "y", minimum)
    if a.size != b.size:
        raise BenchDataError(
            f"paired tests need equal lengths, got {a.size} and {b.size} observations"
        )
    return a, b


def check_alternative(alternative: str) -> str:
    if alternative not in ALTERNATIVES:
        raise BenchDataError(
            f"alternative must be one of {', '.join(ALTERNATIVES)}, got {alternative!r}"
        )
    return alternative


def check_level(confidence_level: float) -> float:
    if not 0 < confidence_level < 1:
        raise BenchDataError(f"confidence_level must be between 0 and 1, got {confidence_level!r}")
    return confidence_level
