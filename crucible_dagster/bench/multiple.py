"""P-value adjustment for multiple comparisons. NaN p-values are excluded from m and passed through."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from crucible_dagster.bench.data import BenchDataError

CORRECTIONS = (
    "none",
    "bonferroni",
    "holm",
    "hochberg",
    "benjamini_hochberg",
    "benjamini_yekutieli",
)
ALIASES = {
    "bh": "benjamini_hochberg",
    "fdr": "benjamini_hochberg",
    "fdr_bh": "benjamini_hochberg",
    "by": "benjamini_yekutieli",
    "fdr_by": "benjamini_yekutieli",
}


def adjust_p_values(p_values: Sequence[float], method: str = "holm") -> list[float]:
    """Adjusted p-values in input order, capped at 1; monotone in the raw p and never below it."""
    method = ALIASES.get(method, method)
    if method not in CORRECTIONS:
        raise BenchDataError(
            f"unknown correction {method!r}; expected one of: {', '.join(CORRECTIONS)}"
        )
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise BenchDataError("p_values must be a flat list")
    if np.any((p < 0) | (p > 1)):
        raise BenchDataError("p-values must lie in [0, 1]")
    out = np.full_like(p, np.nan)
    valid = ~np.isnan(p)
    q = p[valid]
    m = q.size
    if m == 0:
        return out.tolist()
    if method == "none":
        adjusted = q.copy()
    elif method == "bonferroni":
        adjusted = np.minimum(q * m, 1.0)
    else:
        order = np.argsort(q, kind="mergesort")
        ranked = q[order]
        ranks = np.arange(1, m + 1)
        if method == "holm":
            stepped = np.maximum.accumulate(ranked * (m - ranks + 1))
        elif method == "hochberg":
            stepped = np.minimum.accumulate((ranked * (m - ranks + 1))[::-1])[::-1]
        else:
            factor = np.sum(1.0 / ranks) if method == "benjamini_yekutieli" else 1.0
            stepped = np.minimum.accumulate((ranked * m * factor / ranks)[::-1])[::-1]
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(stepped, 1.0)
    out[valid] = adjusted
    return out.tolist()
