"""Numbers rounded to what their confidence interval can tell apart.

A mean of 0.988431 with a 95% interval of [0.9837, 0.9930] is known to about a thousandth:
its fifth and sixth digits are noise, and showing them invites reading differences that are not
there. Two significant digits of the interval's half-width are kept (the second one says where
inside the first the bound falls); a number without a usable interval keeps four significant
digits, as the reports print it.
"""

from __future__ import annotations

import math
from typing import Any

#: significant digits of a number that has no interval to round it by
PLAIN_DIGITS = 4


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def interval_decimals(low: Any, high: Any) -> int | None:
    """Decimal places keeping two significant digits of the interval's half-width (negative:
    tens, hundreds); None when the interval is missing, not finite or of zero width."""
    if not (_finite(low) and _finite(high)) or high <= low:
        return None
    half = (float(high) - float(low)) / 2
    return 1 - math.floor(math.log10(half))


def significant(value: Any, digits: int = PLAIN_DIGITS) -> float | None:
    """``value`` to ``digits`` significant digits; None for a value that is not a finite number."""
    if not _finite(value):
        return None
    return float(f"{float(value):.{digits}g}")


def round_by_interval(value: Any, low: Any, high: Any) -> tuple[float | None, ...]:
    """``(value, low, high)`` rounded to the interval's precision (``interval_decimals``), or
    each to ``PLAIN_DIGITS`` significant digits without a usable interval; a missing or
    non-finite number stays None."""
    decimals = interval_decimals(low, high)
    if decimals is None:
        return tuple(significant(v) for v in (value, low, high))
    return tuple(round(float(v), decimals) if _finite(v) else None for v in (value, low, high))
