"""Cochran's Q: k conditions scored right (1) or wrong (0) on the same blocks (samples).

Q = (k − 1)·[k·Σ C_j² − N²] / (k·N − Σ R_i²), C_j the column (condition) totals, R_i the row
(block) totals and N the grand total; asymptotically χ² on k − 1 df (Cochran 1950; Sheskin,
Handbook of Parametric and Nonparametric Statistical Procedures, ch. 26). With k = 2 it is
McNemar's uncorrected statistic (b − c)²/(b + c).

The exact p-value is the permutation distribution of Q conditional on the row totals (each
block's successes equally likely in any of its C(k, R_i) arrangements under H0), counted
exactly over column-total vectors when that space is small enough; with k = 2 it equals the
exact two-sided binomial p of McNemar's test.
"""

from __future__ import annotations

import math
from collections import defaultdict
from itertools import combinations
from typing import Any

import numpy as np

from crucible_dagster.bench.data import BenchDataError
from crucible_dagster.bench.result import NAN, TestResult

#: the exact distribution is counted in at most this many state updates (well under a second)
EXACT_WORK_LIMIT = 100_000


def _binary_table(table: Any) -> np.ndarray:
    """The blocks x conditions table as integers, refused unless every cell is 0 or 1."""
    try:
        data = np.asarray(table, dtype=float)
    except (TypeError, ValueError) as exc:
        raise BenchDataError(f"cochran_q needs a table of 0/1 numbers: {exc}") from None
    if data.ndim != 2 or data.shape[0] < 1 or data.shape[1] < 2:
        raise BenchDataError(
            "cochran_q needs a blocks x conditions table with at least 1 block and 2 "
            f"conditions, got shape {data.shape}"
        )
    if not np.isfinite(data).all():
        raise BenchDataError("cochran_q: the table holds NaN or infinite values")
    if not np.isin(data, (0.0, 1.0)).all():
        raise BenchDataError("cochran_q needs every value to be 0 or 1 (wrong or right)")
    return data.astype(np.int64)


def cochran_q(table: Any, names: list[str] | None = None, *, exact: bool = True) -> TestResult:
    """Cochran's Q on a blocks x conditions 0/1 table; ``p_value`` is the χ² p (R's
    ``RVAideMemoire::cochran.qtest``), ``p_value_exact`` the permutation p when counted."""
    data = _binary_table(table)
    n, k = data.shape
    columns, rows = data.sum(axis=0), data.sum(axis=1)
    grand = int(columns.sum())
    result = TestResult(test="cochran_q", df=float(k - 1), n=(n, k), method="Cochran's Q")
    result.extra = {
        "column_totals": columns.tolist(),
        "proportions": (columns / n).tolist(),
        "informative_blocks": int(np.sum((rows > 0) & (rows < k))),
    }
    if names:
        result.extra["conditions"] = list(names)
    denominator = k * grand - int(np.sum(rows**2))
    if denominator == 0:
        result.reason = (
            "every block has the same value under every condition: Q is 0/0 (no block "
            "tells the conditions apart)"
        )
        result.extra["p_value_exact"] = 1.0 if exact else NAN
        return result
    q = (k - 1) * (k * float(np.sum(columns**2)) - grand**2) / denominator
    from scipy import stats

    result.statistic, result.p_value = float(q), float(stats.chi2.sf(q, k - 1))
    # Serlin, Carr & Marascuilo (1982): Q / (n (k − 1)), on the scale of Kendall's W
    result.effect_size, result.effect_size_name = q / (n * (k - 1)), "cochran_eta_squared"
    if exact:
        p_exact, why = exact_q_p_value(rows.tolist(), k, q)
        result.extra["p_value_exact"] = p_exact
        if why:
            result.extra["p_value_exact_reason"] = why
    return result


def exact_q_p_value(row_totals: list[int], k: int, observed: float) -> tuple[float, str | None]:
    """P(Q ≥ observed) under H0 given the row totals, counted over column-total vectors.

    Column totals are exchangeable under H0, so the states are their sorted tuples; each
    informative block adds one of its C(k, r) arrangements with equal probability."""
    informative = [r for r in row_totals if 0 < r < k]
    fixed = sum(1 for r in row_totals if r == k)  # blocks right everywhere add 1 to each column
    states: dict[tuple[int, ...], float] = {(0,) * k: 1.0}
    work = 0
    for r in informative:
        patterns = list(combinations(range(k), r))
        work += len(states) * len(patterns)
        if work > EXACT_WORK_LIMIT:
            return NAN, (
                f"counting the exact distribution takes more than {EXACT_WORK_LIMIT} steps "
                f"({len(informative)} informative blocks, {k} conditions): only the "
                "chi-squared p is given"
            )
        weight = 1.0 / len(patterns)
        grown: defaultdict[tuple[int, ...], float] = defaultdict(float)
        for state, probability in states.items():
            for pattern in patterns:
                totals = list(state)
                for j in pattern:
                    totals[j] += 1
                grown[tuple(sorted(totals))] += probability * weight
        states = dict(grown)
    grand = sum(row_totals)
    denominator = k * grand - sum(r * r for r in row_totals)
    tolerance = 1e-9 * max(1.0, abs(observed))
    p = 0.0
    for state, probability in states.items():
        columns = [c + fixed for c in state]
        q = (k - 1) * (k * sum(c * c for c in columns) - grand**2) / denominator
        if q >= observed - tolerance:
            p += probability
    return min(1.0, p), None


def is_binary_table(values: list[np.ndarray]) -> bool:
    """Every group's values are 0 or 1 and there is at least one: Cochran's Q applies."""
    return bool(values) and all(
        v.size and bool(np.isin(v, (0.0, 1.0)).all() and math.isfinite(float(v.sum())))
        for v in values
    )
